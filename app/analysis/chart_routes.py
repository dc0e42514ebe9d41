"""Pages of control charts: Shewhart charts with Westgard flags, and their baselines."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
