"""Codes of analysis records as typed or scanned (AB26-00001, CC26-00001, IM26-00001, an import
profile's code): one reading of them, so a scanner's trailing newline or a typed space finds the
same row on every page and in the API."""

from __future__ import annotations

import re


def clean_code(code: str | None) -> str:
    """The code without white space, in capitals (codes hold none, and are stored in capitals)."""
    return re.sub(r"\s+", "", code or "").upper()
