"""JSON API of analysis batches."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
