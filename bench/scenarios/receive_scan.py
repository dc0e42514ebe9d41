"""receive_scan: 2,000 containers received at the lab door one scan request at a time (size =
containers), the issue's contract: request p50/p95 against a bare Starlette handler doing one
INSERT on the same database, target ≤ 3 at p95.

Ours: the real application (`create_app` on the side's database) behind Starlette's TestClient;
a custodian's bearer token; one delivery opened (untimed) for a sampler holding `size` filled
containers of `size / 2` client samples (registered through the service, then set collected and
filled as the field service leaves them); then, timed, one `POST /api/v1/receipts/{code}/scans`
per container — bearer-token lookup, roles, the delivery row locked, the barcode's check digit,
the container and its sample, the expected list, the scan row, one audit event (chained hash),
commit, the JSON answer.

Baseline: a bare Starlette app (no middleware, no auth) on the same kind of database with one
route that reads the same JSON body and INSERTs one row (delivery code, barcode, time) into a
bench-only table in its own transaction, off the event loop as FastAPI runs our sync route;
the same TestClient, the same barcodes, one request each.

Each side records every request's latency. The runner's table shows the totals (their ratio is
the mean ratio); the scenario prints each side's p50 and p95 per request and, after the
baseline, the p95 ratio against the target. The runner compares the number of rows written.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, insert, select, update

from app.core.db import WRITE_OPTION
from bench import samples_workload as workload
from bench.registry import BenchContext, Prepared, register

TARGET = 3.0
PARAMETERS = ("COD", "Cu")  # two preservation groups: two containers per sample
REGISTER_CHUNK = 1_000
_P95: dict[str, float] = {}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _report(side: str, latencies: list[float]) -> None:
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    _P95[side] = p95
    line = (f"receive_scan {side}: {len(latencies):,} requests, p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:.2f} ms" if latencies else f"receive_scan {side}: none")
    print(line, file=sys.stderr)
    if side == "baseline" and _P95.get("ours") and p95 > 0:
        ratio = _P95["ours"] / p95
        verdict = "pass" if ratio <= TARGET else "OVER TARGET"
        print(f"receive_scan p95 ratio ours/baseline: {ratio:.2f} (target ≤ {TARGET:g}) {verdict}", file=sys.stderr)


def _timed_requests(client: Any, path: str, barcodes: list[str], headers: dict[str, str]) -> list[float]:
    latencies = []
    for barcode in barcodes:
        started = time.perf_counter()
        answer = client.post(path, json={"barcode": barcode}, headers=headers)
        latencies.append(time.perf_counter() - started)
        if answer.status_code != 201:
            raise RuntimeError(f"receive_scan: {barcode} answered {answer.status_code} {answer.text[:300]}")
    return latencies


# ---------------------------------------------------------------- ours


def _containers_held_by_a_sampler(db: Any, custodian: Any, size: int) -> tuple[Any, list[str]]:
    from app.people import service as people
    from app.samples.models import Container, Sample

    with db.transaction() as session:
        sampler = people.create_user(session, None, "bench-sampler", "采样员", "bench-password-42",
                                     display_name_en="Bench Sampler", check_permission=False)
        people.grant_role_as_system(session, sampler, "sampler", "bench")
    rows = workload.client_samples(-(-size // len(PARAMETERS)), PARAMETERS)
    workload.register(db, custodian, rows, REGISTER_CHUNK)
    taken = datetime.now(UTC) - timedelta(hours=1)
    with db.transaction() as session:
        session.execute(update(Sample).values(state="collected", collected_at=taken, sampler_id=sampler.id))
        session.execute(update(Container).values(state="filled", filled_at=taken, holder_id=sampler.id))
        barcodes = list(session.scalars(select(Container.barcode).order_by(Container.id)))[:size]
        extra = [c for c in session.scalars(select(Container.id).order_by(Container.id))][size:]
        if extra:  # an odd size: the last sample's second container stays in the field
            session.execute(update(Container).where(Container.id.in_(extra)).values(holder_id=None))
    return sampler, barcodes


def ours(ctx: BenchContext) -> Prepared:
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app
    from app.people import service as people
    from app.samples import receipt

    custodian = workload.make_registrar(ctx.db)
    _, barcodes = _containers_held_by_a_sampler(ctx.db, custodian, ctx.size)
    with ctx.db.transaction() as session:
        delivery = receipt.open_delivery(session, custodian, receipt.DeliveryInput(sampler="bench-sampler"))
        token = people.create_token(session, None, custodian.id, "bench scanner", check_permission=False)[1]
    data_dir = Path(tempfile.mkdtemp(prefix="lims_bench_receive_"))
    app = create_app(Settings(data_dir=data_dir, database_url=ctx.db.url, secret_key="bench-secret-key-0123456789",
                              language="en"))
    client = TestClient(app)
    client.__enter__()
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/receipts/{delivery.code}/scans"
    client.post(path, json={"barcode": "CT00-00000000"}, headers=headers)  # warm-up: refused, writes nothing

    def run() -> list[float]:
        return _timed_requests(client, path, barcodes, headers)

    def fingerprint(latencies: list[float]) -> int:
        from app.samples.lab_models import DeliveryScan

        client.__exit__(None, None, None)
        app.state.db.dispose()
        _report("ours", latencies)
        with ctx.db.reading() as session:
            return session.scalar(select(func.count()).select_from(DeliveryScan))

    return Prepared(run, fingerprint)


# ---------------------------------------------------------------- baseline


def baseline(ctx: BenchContext) -> Prepared:
    from fastapi.testclient import TestClient
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    metadata = MetaData()
    scans = Table("bench_receive_scan", metadata, Column("id", Integer, primary_key=True),
                  Column("delivery", String(20), nullable=False), Column("barcode", String(20), nullable=False),
                  Column("scanned_at", DateTime, nullable=False))
    metadata.create_all(ctx.db.engine)
    engine = ctx.db.engine.execution_options(**{WRITE_OPTION: True})

    def write(code: str, barcode: str) -> None:
        with engine.begin() as conn:
            conn.execute(insert(scans).values(delivery=code, barcode=barcode,
                                              scanned_at=datetime.now(UTC).replace(tzinfo=None)))

    async def scan(request: Request) -> JSONResponse:
        body = await request.json()
        code = request.path_params["code"]
        await run_in_threadpool(write, code, body["barcode"])
        return JSONResponse({"delivery": code, "barcode": body["barcode"], "created": True}, status_code=201)

    app = Starlette(routes=[Route("/api/v1/receipts/{code}/scans", scan, methods=["POST"])])
    barcodes = [f"CT26-{n:07d}0" for n in range(1, ctx.size + 1)]
    client = TestClient(app)
    client.__enter__()
    path = "/api/v1/receipts/RC26-00001/scans"

    def run() -> list[float]:
        return _timed_requests(client, path, barcodes, {})

    def fingerprint(latencies: list[float]) -> int:
        client.__exit__(None, None, None)
        _report("baseline", latencies)
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(scans))

    return Prepared(run, fingerprint)


register("receive_scan", target=TARGET, ours=ours, baseline=baseline, default_size=2_000,
         description="2,000 scans at the lab door, one request each: p95 vs a bare Starlette INSERT")
