"""Result entry: the keyboard-first grid of a batch and its one-cell fragments."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
