"""JSON API of results: reading them, and instruments posting results with idempotency keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
