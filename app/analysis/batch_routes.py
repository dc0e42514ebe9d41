"""Pages of analysis batches: building one from the samples due, its worksheet, starting it."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
