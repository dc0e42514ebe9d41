"""Pages of methods, their versions and MDL studies (technical manager)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
