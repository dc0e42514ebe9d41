"""Field QC per field batch (DOMAIN.md §3, §4.2): a field blank per batch, and field duplicates for
at least 10 % of the samples, at least one per batch. A field batch is one sampler's tasks of one
day: the samples that travel, are preserved and handled together."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

DUPLICATE_RATE = Decimal("0.10")  # HJ 828-2017 §12; GJW-03-SSG-005 (verify per method)


@dataclass(frozen=True)
class FieldQc:
    blanks: int
    duplicates: int


def field_qc_for_batch(routine_samples: int, duplicate_rate: Decimal = DUPLICATE_RATE) -> FieldQc:
    """How many field blanks and duplicates a batch of `routine_samples` needs."""
    if routine_samples <= 0:
        return FieldQc(0, 0)
    duplicates = max(1, math.ceil(Decimal(routine_samples) * duplicate_rate))
    return FieldQc(blanks=1, duplicates=min(duplicates, routine_samples))


def assign_field_qc(task_keys: Sequence[object], duplicate_rate: Decimal = DUPLICATE_RATE) -> dict[object, FieldQc]:
    """Spread a batch's QC over its tasks (each task yields one routine sample), in the order
    given: the blank goes with the first task, one duplicate each with the first tasks."""
    qc = field_qc_for_batch(len(task_keys), duplicate_rate)
    return {key: FieldQc(blanks=1 if i < qc.blanks else 0, duplicates=1 if i < qc.duplicates else 0)
            for i, key in enumerate(task_keys)}
