"""The anomaly rules (DOMAIN.md §7), one module per family; importing this package registers
them all with app.oversight.rules.base."""

from app.oversight.rules import (  # noqa: F401
    chemistry,
    copying,
    field_and_custody,
    gates,
    history,
    qc_too_good,
    station,
    timing,
)
