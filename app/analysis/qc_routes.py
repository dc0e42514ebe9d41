"""Pages of QC evaluation, corrective actions and signing a batch."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
