"""Instrument-import workload: a running ICP-MS batch and a generic CSV export of its results, for
the `import_results` bench.

The world is written the same way into each database (so ids match): a technical manager and an
analyst (through the people service), a method HJ 700-2014 reading ten metals directly in μg/L
(rows written straight into its tables, as the test factories do), a batch started three hours
ago with one position per sample labelled S-0001..., and the generic profile `BENCH-WIDE` (through
the profile service): a wide CSV, one row per sample, one column per metal, the unit fixed, a
measured-at column. The batch names no instrument, so the instrument gate (a handful of status
queries per import, whatever its size) is not part of the comparison; the direct calculation is.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from app.analysis import import_profiles
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, Method, MethodParameter, MethodVersion
from app.core.canonical import canonical_json
from app.core.db import Database, utcnow
from app.people import service as people
from app.people.models import User

METALS = ("As", "Cd", "Pb", "Cu", "Zn", "Cr", "Ni", "Mn", "Se", "Sb")
PROFILE = "BENCH-WIDE"
BATCH_NO = "AB26-99999"


def make_world(db: Database, results: int) -> tuple[User, AnalysisBatch, bytes]:
    """The analyst, the running batch and the CSV of `results` readings (ten per sample)."""
    samples = max(1, results // len(METALS))
    now = utcnow()
    with db.transaction() as session:
        technical = people.create_user(session, None, "bench-technical", "技术负责人", "bench-password-42",
                                       display_name_en="Bench Technical", check_permission=False)
        people.grant_role_as_system(session, technical, "technical_manager", "bench",
                                    valid_from=now - timedelta(days=365))
        analyst = people.create_user(session, None, "bench-analyst", "分析员", "bench-password-42",
                                     display_name_en="Bench Analyst", check_permission=False)
        people.grant_role_as_system(session, analyst, "analyst", "bench", valid_from=now - timedelta(days=365))
        session.flush()
        method = Method(code="HJ 700-2014", name_zh="水质 65种元素的测定 电感耦合等离子体质谱法", name_en="HJ 700-2014",
                        matrix="water", created_at=now, created_by_id=technical.id)
        session.add(method)
        session.flush()
        version = MethodVersion(method_id=method.id, version=1, valid_from=now - timedelta(days=365),
                                calculation="direct", created_at=now, created_by_id=technical.id)
        session.add(version)
        session.flush()
        session.execute(insert(MethodParameter), [
            {"method_version_id": version.id, "parameter": p, "unit": "μg/L", "mdl": Decimal("0.05"), "decimals": 3,
             "below_mdl": "mdl_l", "organic": False} for p in METALS])
        batch = AnalysisBatch(batch_no=BATCH_NO, method_version_id=version.id, parameters=canonical_json(list(METALS)),
                              state="running", analyst_id=analyst.id, created_at=now - timedelta(hours=4),
                              started_at=now - timedelta(hours=3))
        session.add(batch)
        session.flush()
        session.execute(insert(BatchPosition), [
            {"batch_id": batch.id, "position": i + 1, "role": "sample", "label": f"S-{i + 1:04d}",
             "added_at": batch.created_at, "added_by_id": analyst.id} for i in range(samples)])
        import_profiles.create_profile(session, technical, PROFILE, "ICP-MS 宽表（CSV）", {
            "format": "csv", "sample_column": "Sample", "measured_at_column": "Measured",
            "wide_columns": {m: m for m in METALS}, "unit": "ppb"})
        session.flush()
        for row in (analyst, batch):
            session.refresh(row)
            session.expunge(row)
    measured = (now - timedelta(hours=2)).astimezone(db.calendar.tz).strftime("%Y-%m-%d %H:%M:%S")
    lines = ["Sample,Measured," + ",".join(METALS)]
    lines += [f"S-{i + 1:04d},{measured}," + ",".join(f"{((i * 37 + j * 11) % 997) / 100 + 0.013:.4f}"
                                                        for j in range(len(METALS))) for i in range(samples)]
    return analyst, batch, ("\n".join(lines) + "\n").encode("utf-8")


def result_rows(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(AnalysisResult.__table__)
                                                       .order_by(AnalysisResult.__table__.c.id))]


def fingerprint(db: Database) -> tuple[int, str]:
    """How many results, and a digest of what each says (position, parameter, reading, value)."""
    digest = hashlib.sha256()
    rows = result_rows(db)
    for row in rows:
        digest.update(repr((row["position_id"], row["parameter"], str(row["reading"]), str(row["value"]),
                            row["unit"], str(row["dilution_factor"]), row["source"])).encode())
    return len(rows), digest.hexdigest()
