"""Pages of analyst qualifications (上岗证): the register, granting and revoking."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
