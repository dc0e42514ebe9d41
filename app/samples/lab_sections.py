"""The lab part of a sample's page, a section per module: custody chain, receipt, holding-time
clocks, storage and retention, preparation, then the sections later domains register (the
evaluation against standards). Each returns what its template shows, or None."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.permissions import permissions_of, roles_at
from app.core.registry import sample_sections
from app.samples.chain import custody_section
from app.samples.holding import clock_section
from app.samples.models import Sample
from app.samples.preparation import prep_section
from app.samples.receipt import receipt_section
from app.samples.storage import storage_section

OWN_SECTIONS = ("receipt", "clocks", "custody", "storage", "prep")


def lab_sections(session: Session, sample: Sample, reader: Any) -> dict[str, Any]:
    """Each section's context; a registered section the reader may not see is not built (None)."""
    held = permissions_of(roles_at(session, reader.id))
    own = {
        "receipt": receipt_section(session, sample),
        "clocks": clock_section(session, sample),
        "custody": custody_section(session, sample),
        "storage": storage_section(session, sample),
        "prep": prep_section(session, sample),
    }
    return {**own, **{section.name: section.build(session, sample)
                      if section.permission is None or section.permission in held else None
                      for section in sample_sections()}}


def lab_section_templates() -> list[tuple[str, str]]:
    """(name, template) in page order: the samples' own sections, then the registered ones."""
    own = [(name, f"samples/_{name}.html") for name in OWN_SECTIONS]
    return own + [(section.name, section.template) for section in sample_sections()]
