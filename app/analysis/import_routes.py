"""Pages of instrument data import: uploading an export, its outcome, and import profiles."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
