"""Placeholder router: filled by the reports work (issue 9)."""

from fastapi import APIRouter

router = APIRouter()
