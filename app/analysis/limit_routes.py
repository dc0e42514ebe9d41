"""Pages of evaluation standards (limit sets) and the evaluation of results and samples."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
