"""Pages of calibration curves: recording one from standards, its fit, acceptance and plot."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
