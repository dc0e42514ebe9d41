"""Oversight (issue 10): the audit explorer, the interference log, the anomaly engine and its
alarms, automatic-station data and the regulator's inspections.

The anomaly rules run on each batch an analyst signs. app.models imports this package (for its
tables), so the engine is imported only when a batch is signed: an eager import here would be
circular (the engine reads the analysis and report modules that app.models is still loading).
"""

from __future__ import annotations

from typing import Any

from app.core.registry import on_batch_signed


def _scan_signed_batch(session: Any, actor: Any, batch_id: int) -> Any:
    from app.oversight.anomalies import scan_signed_batch

    return scan_signed_batch(session, actor, batch_id)


on_batch_signed("anomalies", _scan_signed_batch)
