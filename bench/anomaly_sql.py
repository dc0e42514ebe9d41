"""The baseline of the `anomaly_scan` bench: the anomaly rules written as plain SQL aggregates,
one statement per rule (a few for the rules with several kinds of finding), returning per rule the
set of finding keys, built exactly as the rule modules build `Finding.key` (so the fingerprints
sha256("code|key") of both sides can be compared).

PostgreSQL first; SQLite where it is cheap (same SQL with a few dialect words: CAST AS REAL for
numbers, a fixed offset for lab time, julianday for intervals). A rule without SQL here, or
without SQL for this engine, is not compared (the scenario prints which rules were).

What each statement replays (the rule modules' docstrings are the reference; the current result
of a position × parameter is the one with no newer revision):
- A01/A19: the analyst × parameter stream of duplicate pairs (both values rounded half-even to
  the reporting precision) / method blanks, in signing order, with a ROWS window counting the
  hits among the last `of_last`; keys group the triggering QC positions per batch × parameter.
- A02: the spike recoveries of each batch's latest QC run, the same windows for "in the band",
  plus stddev_samp over the last `sd_window` against all earlier ones.
- A06/A07: a self-join of the current sample results by pair of parameters / a join with the
  method's MDL, compared as exact numerics.
- A08: the previous `HISTORY_LIMIT` values of each site × parameter gathered with array_agg as a
  window aggregate, median and MAD by percentile_cont over the unnested array (PostgreSQL only,
  up to 100,000 results: above, the rolling median takes minutes and is not compared).
- A13: for each current result at a site with station readings, the closest reading within the
  window (a correlated ORDER BY distance LIMIT 1), relative or absolute criterion.
- A14: batches whose analyst held no qualification covering the lab-local analysis day; manual
  results entered by someone else than the batch analyst.
- A18: custody gaps, field blanks above k × MDL, field duplicates whose RD against the latest
  current result of the original exceeds the limit (the method's limit table is not replayed:
  the default limit applies when the method version has none, the only case the bench has).
- A03: GROUP BY batch × parameter × numeric value HAVING ≥ n samples (below-MDL excluded).
- A04: windows of k values and of their differences as numeric arrays (array_agg over ROWS),
  first occurrences by DISTINCT ON, aligned matches grouped into runs (PostgreSQL only).
- A05: last digit of the reported value per analyst × parameter × lab quarter, χ² from counts.
- A09: results analysed before collection or receipt, receipts before collection, batches signed
  before they started, results entered after the batch's submission (batches without an
  e-signature; for signed batches every late entry is listed: whether the signature still holds
  is the signature service's question, which the bench data never asks).
- A10: analysis start − collection > the clock's allowed hours, no deviation for the parameter.
- A11: revisions entered after the last signed check (before them) of a report covering the
  sample, unless a level returned that report in between.
- A12: off-hours entries (lab time) per user, min(seq) over a RANGE frame of bulk_minutes gives
  each entry's burst reach, a new burst where the reach passes the previous trigger; back-dated
  first entries per batch × enterer.
Not written: A15 (instrument status replayed from its records), A16 (standards' expiry), A17
(hashing files is not SQL): the scan runs them, the bench does not compare them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

Limits = dict[str, Decimal]


@dataclass(frozen=True)
class Ctx:
    """What a statement needs besides the limits: the engine, the scan's end, the lab zone."""

    dialect: str  # postgresql or sqlite
    until: datetime  # aware UTC
    tz: str = "Asia/Shanghai"
    offset_hours: int = 8  # SQLite: the lab zone as a fixed offset (no DST in China)

    @property
    def pg(self) -> bool:
        return self.dialect == "postgresql"

    def num(self, expr: str) -> str:
        """A DecimalText column as a number: exact numeric on PostgreSQL, REAL on SQLite."""
        return f"CAST({expr} AS numeric)" if self.pg else f"CAST({expr} AS REAL)"

    def at(self, moment: datetime) -> Any:
        """A bind value for a UTC datetime column (naive UTC, SQLite's stored text form)."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive if self.pg else naive.strftime("%Y-%m-%d %H:%M:%S.%f")

    def dec(self, value: Decimal) -> Any:
        """A Decimal bind value (SQLite's driver takes floats)."""
        return value if self.pg else float(value)

    def local_date(self, expr: str) -> str:
        if self.pg:
            return f"CAST(({expr} AT TIME ZONE 'UTC') AT TIME ZONE '{self.tz}' AS date)"
        return f"date({expr}, '{self.offset_hours:+d} hours')"

    def seconds_between(self, a: str, b: str) -> str:
        if self.pg:
            return f"abs(extract(epoch from ({a} - {b})))"
        return f"abs(julianday({a}) - julianday({b})) * 86400.0"

    def round_half_even(self, x: str, places: str) -> str:
        """GB/T 8170 (四舍六入五成双) of a numeric at `places` decimals (may be negative)."""
        if not self.pg:  # REAL: an exact half does not survive the float anyway
            return f"round({x}, {places})"
        scaled = f"({x} * power(10::numeric, {places}))"
        return (f"(CASE WHEN abs({scaled} - trunc({scaled})) = 0.5 "
                f"THEN (trunc({scaled}) + mod(trunc({scaled}), 2) * sign({x})) / power(10::numeric, {places}) "
                f"ELSE round({x}, {places}) END)")

    def reported(self, value: str, decimals: str, figures: str) -> str:
        """The value at its reporting precision: decimals, or significant figures, or as is."""
        x = self.num(value)
        log = f"floor(log(abs({x})))" if self.pg else f"floor(log10(abs({x})))"
        places = f"CAST({figures} - 1 - {log} AS integer)"
        return (f"(CASE WHEN {decimals} IS NOT NULL THEN {self.round_half_even(x, decimals)} "
                f"WHEN {figures} IS NOT NULL AND {x} <> 0 THEN {self.round_half_even(x, places)} ELSE {x} END)")


def current(alias: str) -> str:
    """The result of record: no newer revision of the same position × parameter."""
    return (f"NOT EXISTS (SELECT 1 FROM analysis_result n_{alias} WHERE n_{alias}.position_id = {alias}.position_id "
            f"AND n_{alias}.parameter = {alias}.parameter AND n_{alias}.revision > {alias}.revision)")


SqlRule = Callable[[Connection, Limits, Ctx], set[str]]
RULES: dict[str, tuple[SqlRule, tuple[str, ...]]] = {}
# rules whose SQL does not scale (compared at small sizes only): results above which they are left out
SCALE_LIMITS: dict[str, int] = {}


def sql_rule(code: str, engines: tuple[str, ...] = ("postgresql", "sqlite"),
             scale_limit: int | None = None) -> Callable[[SqlRule], SqlRule]:
    def register(fn: SqlRule) -> SqlRule:
        RULES[code] = (fn, engines)
        if scale_limit is not None:
            SCALE_LIMITS[code] = scale_limit
        return fn
    return register


def available(dialect: str, size: int | None = None) -> list[str]:
    """The rule codes with SQL for this engine (and, given a size, that scales to it)."""
    return sorted(code for code, (_, engines) in RULES.items()
                  if dialect in engines and (size is None or size <= SCALE_LIMITS.get(code, size)))


def run(conn: Connection, codes: list[str], limits: dict[str, Limits], ctx: Ctx,
        progress: Callable[[str, int], None] | None = None) -> tuple[dict[str, set[str]], dict[str, float]]:
    """Every named rule's keys, and the seconds each statement took."""
    keys: dict[str, set[str]] = {}
    seconds: dict[str, float] = {}
    for code in codes:
        fn, _ = RULES[code]
        started = time.perf_counter()
        keys[code] = fn(conn, limits[code], ctx)
        seconds[code] = time.perf_counter() - started
        if progress:
            progress(code, len(keys[code]))
    return keys, seconds


def _int(limits: Limits, name: str) -> int:
    return int(limits[name])


# ---------------------------------------------------------------- QC too good (A01, A02, A19)


def _latest_evaluations(ctx: Ctx, kind: str, *, without_results: bool) -> str:
    """The checks of each signed batch's latest QC run (as the rule's _evaluations)."""
    no_result = ("AND (e.position_id IS NULL OR NOT EXISTS (SELECT 1 FROM analysis_result x "
                 "WHERE x.position_id = e.position_id AND x.parameter = e.parameter))") if without_results else ""
    return f"""
        SELECT b.analyst_id, e.parameter, b.submitted_at AS at, e.batch_id, COALESCE(e.position_id, 0) AS position_id,
               e.id AS evaluation_id, e.value AS qc_value
        FROM qc_evaluation e
        JOIN (SELECT batch_id, max(run) AS run FROM qc_evaluation GROUP BY batch_id) last
          ON last.batch_id = e.batch_id AND last.run = e.run
        JOIN analysis_batch b ON b.id = e.batch_id
        WHERE e.kind = '{kind}' AND e.value IS NOT NULL AND b.submitted_at IS NOT NULL AND b.submitted_at <= :until
        {no_result}"""


def _ref(position_id: int, evaluation_id: int | None) -> str:
    return f"p{position_id}" if evaluation_id is None or position_id else f"e{evaluation_id}"


def _grouped_keys(rows: Any) -> set[str]:
    """One key per batch × parameter: the parameter and its triggering QC refs, sorted."""
    refs: dict[tuple[int, str], set[str]] = {}
    for parameter, batch_id, position_id, evaluation_id in rows:
        refs.setdefault((batch_id, parameter), set()).add(_ref(position_id, evaluation_id))
    return {f"{parameter}|{','.join(sorted(found))}" for (_, parameter), found in refs.items()}


def _trailing(points: str, of_last: int) -> str:
    return f"""
        WITH points AS ({points}),
        counted AS (
            SELECT parameter, batch_id, position_id, evaluation_id, hit,
                   SUM(CASE WHEN hit THEN 1 ELSE 0 END) OVER (
                       PARTITION BY analyst_id, parameter ORDER BY at, batch_id, position_id, evaluation_id
                       ROWS BETWEEN {of_last - 1} PRECEDING AND CURRENT ROW) AS hits
            FROM points)
        SELECT parameter, batch_id, position_id, evaluation_id FROM counted WHERE hit AND hits >= :count"""


@sql_rule("A01")
def duplicates_exactly_equal(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    def below(alias: str) -> str:
        return f"({alias}.below_mdl OR (mp.mdl IS NOT NULL AND {ctx.num(f'{alias}.value')} < {ctx.num('mp.mdl')}))"

    pairs = f"""
        SELECT * FROM (
            SELECT b.analyst_id, own.parameter, b.submitted_at AS at, own.batch_id, dup.id AS position_id,
                   CAST(NULL AS integer) AS evaluation_id,
                   CASE WHEN {below('f')} AND {below('own')} THEN NULL
                        ELSE {ctx.reported('f.value', 'mp.decimals', 'mp.significant_figures')}
                           = {ctx.reported('own.value', 'mp.decimals', 'mp.significant_figures')} END AS hit
            FROM analysis_result own
            JOIN batch_position dup ON dup.id = own.position_id AND dup.role = 'duplicate'
            JOIN analysis_result f ON f.position_id = dup.of_position_id AND f.parameter = own.parameter
            JOIN analysis_batch b ON b.id = own.batch_id
            LEFT JOIN method_parameter mp ON mp.method_version_id = own.method_version_id
                                         AND mp.parameter = own.parameter
            WHERE {current('own')} AND {current('f')} AND b.submitted_at IS NOT NULL AND b.submitted_at <= :until
            UNION ALL
            SELECT ev.analyst_id, ev.parameter, ev.at, ev.batch_id, ev.position_id, ev.evaluation_id,
                   {ctx.num('ev.qc_value')} = 0
            FROM ({_latest_evaluations(ctx, 'duplicate', without_results=True)}) ev
        ) judged WHERE hit IS NOT NULL"""
    rows = conn.execute(text(_trailing(pairs, _int(limits, "of_last"))),
                        {"until": ctx.at(ctx.until), "count": _int(limits, "count")})
    return _grouped_keys(rows)


@sql_rule("A19")
def blanks_always_zero(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    blanks = f"""
        SELECT b.analyst_id, r.parameter, b.submitted_at AS at, r.batch_id, r.position_id,
               CAST(NULL AS integer) AS evaluation_id, {ctx.num('r.value')} = 0 AS hit
        FROM analysis_result r
        JOIN batch_position bp ON bp.id = r.position_id AND bp.role = 'method_blank'
        JOIN analysis_batch b ON b.id = r.batch_id
        WHERE {current('r')} AND b.submitted_at IS NOT NULL AND b.submitted_at <= :until
        UNION ALL
        SELECT ev.analyst_id, ev.parameter, ev.at, ev.batch_id, ev.position_id, ev.evaluation_id,
               {ctx.num('ev.qc_value')} = 0
        FROM ({_latest_evaluations(ctx, 'blank', without_results=True)}) ev"""
    rows = conn.execute(text(_trailing(blanks, _int(limits, "of_last"))),
                        {"until": ctx.at(ctx.until), "count": _int(limits, "count")})
    return _grouped_keys(rows)


@sql_rule("A02")
def recoveries_at_hundred(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    of_last, window = _int(limits, "of_last"), _int(limits, "sd_window")
    v = ctx.num("ev.qc_value")
    order = "PARTITION BY analyst_id, parameter ORDER BY at, batch_id, position_id, evaluation_id"
    if ctx.pg:
        recent_sd = f"stddev_samp(v) OVER (w ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW)"
        long_sd = f"stddev_samp(v) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND {window} PRECEDING)"
    else:  # no stddev_samp: from the sums (REAL)
        def sd(frame: str) -> str:
            n, s, q = (f"count(v) OVER (w {frame})", f"sum(v) OVER (w {frame})", f"sum(v * v) OVER (w {frame})")
            return f"(CASE WHEN {n} > 1 THEN sqrt(max(({q} - {s} * {s} / {n}) / ({n} - 1), 0)) END)"
        recent_sd = sd(f"ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW")
        long_sd = sd(f"ROWS BETWEEN UNBOUNDED PRECEDING AND {window} PRECEDING")
    sql = f"""
        WITH points AS (
            SELECT ev.analyst_id, ev.parameter, ev.at, ev.batch_id, ev.position_id, ev.evaluation_id, {v} AS v,
                   abs({v} - 100) <= :band AS hit
            FROM ({_latest_evaluations(ctx, 'spike', without_results=False)}) ev),
        counted AS (
            SELECT parameter, batch_id, position_id, evaluation_id, hit,
                   SUM(CASE WHEN hit THEN 1 ELSE 0 END) OVER (w ROWS BETWEEN {of_last - 1} PRECEDING AND CURRENT ROW)
                       AS in_band,
                   row_number() OVER (w) AS n,
                   count(v) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND {window} PRECEDING) AS long_n,
                   {recent_sd} AS recent_sd, {long_sd} AS long_sd
            FROM points WINDOW w AS ({order}))
        SELECT parameter, batch_id, position_id, evaluation_id FROM counted
        WHERE (hit AND in_band >= :count)
           OR (n >= {window} AND long_n >= {window} AND long_sd > 0 AND recent_sd < :ratio * long_sd)"""
    rows = conn.execute(text(sql), {"until": ctx.at(ctx.until), "count": _int(limits, "count"),
                                    "band": ctx.dec(limits["band"]), "ratio": ctx.dec(limits["sd_ratio"])})
    return _grouped_keys(rows)


# ---------------------------------------------------------------- chemistry (A06, A07)


def _pairs_values() -> str:
    from app.oversight.rules.chemistry import PART_WHOLE_PAIRS  # the rule's configuration data

    return ", ".join(f"('{part}', '{whole}')" for part, whole in PART_WHOLE_PAIRS)


@sql_rule("A06")
def impossible_relation(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    factor = 1 + limits["tolerance_pct"] / 100
    sql = f"""
        WITH pairs(part, whole) AS (VALUES {_pairs_values()})
        SELECT p.id, w.id
        FROM analysis_result p
        JOIN pairs ON pairs.part = p.parameter
        JOIN analysis_result w ON w.sample_id = p.sample_id AND w.parameter = pairs.whole
        JOIN batch_position pp ON pp.id = p.position_id AND pp.role = 'sample'
        JOIN batch_position wp ON wp.id = w.position_id AND wp.role = 'sample'
        LEFT JOIN method_parameter mp ON mp.method_version_id = p.method_version_id AND mp.parameter = p.parameter
        WHERE p.sample_id IS NOT NULL AND p.below_mdl = false AND p.entered_at <= :until AND w.entered_at <= :until
          AND p.unit = w.unit AND {current('p')} AND {current('w')}
          AND {ctx.num('p.value')} > {ctx.num('w.value')} * :factor
                                    + COALESCE(CASE WHEN mp.unit = w.unit THEN {ctx.num('mp.mdl')} END, 0)"""
    return {f"{min(a, b)},{max(a, b)}" for a, b in conn.execute(text(sql), {"until": ctx.at(ctx.until),
                                                                         "factor": ctx.dec(factor)})}


@sql_rule("A07")
def below_mdl_without_qualifier(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    sql = f"""
        SELECT r.id FROM analysis_result r
        JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
        JOIN batch_position bp ON bp.id = r.position_id AND bp.role = 'sample'
        WHERE r.sample_id IS NOT NULL AND r.below_mdl = false AND r.qualifier = '' AND r.entered_at <= :until
          AND r.unit = mp.unit AND {ctx.num('r.value')} < {ctx.num('mp.mdl')} AND {current('r')}"""
    return {str(rid) for (rid,) in conn.execute(text(sql), {"until": ctx.at(ctx.until)})}


# ---------------------------------------------------------------- site history (A08)


@sql_rule("A08", engines=("postgresql",), scale_limit=100_000)
def site_history_outlier(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    """A rolling median is no SQL aggregate: array_agg over a moving frame is rebuilt for every
    row and each median and MAD is a subquery. Exact, but about 6 minutes over 1,000,000 results
    (the rule: under a minute), so the bench compares it at small sizes only."""
    from app.oversight.rules.history import HISTORY_LIMIT

    min_history = _int(limits, "min_history")
    history = max(HISTORY_LIMIT, min_history)
    sql = f"""
        WITH results AS (
            SELECT r.id, s.site_id, r.parameter, s.collected_at, {ctx.num('r.value')} AS x,
                   array_agg({ctx.num('r.value')}) OVER (
                       PARTITION BY s.site_id, r.parameter ORDER BY s.collected_at, r.id
                       ROWS BETWEEN {history} PRECEDING AND 1 PRECEDING) AS prior
            FROM analysis_result r
            JOIN sample s ON s.id = r.sample_id
            JOIN batch_position bp ON bp.id = r.position_id AND bp.role = 'sample'
            WHERE s.site_id IS NOT NULL AND s.collected_at IS NOT NULL
              AND s.kind NOT IN ('field_blank', 'transport_blank') AND r.below_mdl = false
              AND r.entered_at <= :until AND {current('r')}),
        judged AS (
            SELECT id, x, prior, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY h) FROM unnest(prior) h) AS med
            FROM results WHERE cardinality(prior) >= {min_history}),
        scaled AS (
            SELECT id, x, med,
                   (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(h - med)) FROM unnest(prior) h) AS mad
            FROM judged)
        SELECT id FROM scaled WHERE mad > 0 AND abs(0.6745 * (x - med) / mad) > :z"""
    return {str(rid) for (rid,) in conn.execute(text(sql), {"until": ctx.at(ctx.until), "z": float(limits["z"])})}


# ---------------------------------------------------------------- station (A13)


@sql_rule("A13")
def station_versus_manual(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    span = int(limits["window_minutes"]) * 60
    distance = ctx.seconds_between("sr.measured_at", "m.collected_at")
    span_range = (f"AND sr.measured_at BETWEEN m.collected_at - interval '{span} seconds' "
                  f"AND m.collected_at + interval '{span} seconds'") if ctx.pg else ""
    m, a, mdl = ctx.num("r.value"), ctx.num("sr.value"), ctx.num("r.mdl")
    sql = f"""
        WITH pairs AS (SELECT DISTINCT site_id, parameter FROM station_reading),
        manual AS (
            SELECT r.id, r.sample_id, r.parameter, r.value, r.unit, mp.mdl, s.site_id, s.collected_at
            FROM analysis_result r
            JOIN sample s ON s.id = r.sample_id
            JOIN pairs ON pairs.site_id = s.site_id AND pairs.parameter = r.parameter
            JOIN analysis_batch b ON b.id = r.batch_id
            JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
            WHERE s.collected_at IS NOT NULL AND s.kind NOT IN ('field_blank', 'transport_blank')
              AND {current('r')}),
        near AS (
            SELECT m.*, sr.id AS reading_id,
                   row_number() OVER (PARTITION BY m.id ORDER BY {distance}, sr.measured_at, sr.id) AS rank
            FROM manual m
            JOIN station_reading sr ON sr.site_id = m.site_id AND sr.parameter = m.parameter {span_range}
            WHERE {distance} <= {span}),
        matched AS (SELECT * FROM near WHERE rank = 1)
        SELECT DISTINCT r.sample_id, r.parameter, r.reading_id
        FROM matched r JOIN station_reading sr ON sr.id = r.reading_id
        WHERE lower(trim(sr.unit)) = lower(trim(r.unit))
          AND CASE WHEN {m} > :mdl_factor * {mdl} AND {m} > 0 THEN abs({a} - {m}) / {m} * 100 > :rel_pct
                   ELSE abs({a} - {m}) > :abs_multiple * {mdl} END"""
    rows = conn.execute(text(sql), {"mdl_factor": ctx.dec(limits["mdl_factor"]), "rel_pct": ctx.dec(limits["rel_pct"]),
                                    "abs_multiple": ctx.dec(limits["abs_mdl_multiple"])})
    return {f"{sid}:{parameter}:{reading}" for sid, parameter, reading in rows}


# ---------------------------------------------------------------- gates (A14)


@sql_rule("A14")
def entered_by_unqualified(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    started = "COALESCE(b.started_at, b.created_at)"
    day = ctx.local_date(started)
    sql = f"""
        SELECT 'unqualified:' || b.id FROM analysis_batch b
        JOIN method_version mv ON mv.id = b.method_version_id
        WHERE b.id IN (SELECT DISTINCT batch_id FROM analysis_result WHERE entered_at <= :until)
          AND NOT EXISTS (SELECT 1 FROM qualification q
                          WHERE q.user_id = b.analyst_id AND q.method_id = mv.method_id
                            AND q.valid_from <= {day} AND {day} <= q.valid_to
                            AND (q.revoked_at IS NULL OR q.revoked_at > {started}))
        UNION
        SELECT 'enterer:' || r.batch_id || ':' || r.entered_by_id FROM analysis_result r
        JOIN analysis_batch b ON b.id = r.batch_id
        WHERE r.entered_at <= :until AND r.source = 'manual' AND r.entered_by_id <> b.analyst_id"""
    return {key for (key,) in conn.execute(text(sql), {"until": ctx.at(ctx.until)})}


# ---------------------------------------------------------------- custody and field QC (A18)


@sql_rule("A18")
def custody_and_field_qc(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    v, mdl = ctx.num("r.value"), ctx.num("o.mdl")
    first, own = ctx.num("o.value_of_original"), ctx.num("o.value")
    sql = f"""
        SELECT 'custody_gap:' || s.id FROM sample s
        LEFT JOIN (SELECT c.sample_id, min(e.recorded_at) AS at FROM custody_event_container c
                   JOIN custody_event e ON e.id = c.event_id WHERE c.gap = true GROUP BY c.sample_id) g
          ON g.sample_id = s.id
        WHERE s.custody_gap = true AND COALESCE(g.at, s.received_at, s.registered_at) <= :until
        UNION
        SELECT 'field_blank:' || r.sample_id FROM analysis_result r
        JOIN sample s ON s.id = r.sample_id
        JOIN analysis_batch b ON b.id = r.batch_id
        JOIN method_version mv ON mv.id = r.method_version_id
        JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
        WHERE s.kind = 'field_blank' AND {current('r')} AND r.entered_at <= :until
          AND {v} > {ctx.num('mp.mdl')} * :multiple
        UNION
        SELECT 'field_duplicate:' || o.sample_id FROM (
            SELECT r.sample_id, r.value, mp.mdl, mv.duplicate_rd_limits,
                   (SELECT x.value FROM analysis_result x
                    WHERE x.sample_id = s.duplicate_of_id AND x.parameter = r.parameter AND {current('x')}
                    ORDER BY x.entered_at DESC, x.id DESC LIMIT 1) AS value_of_original
            FROM analysis_result r
            JOIN sample s ON s.id = r.sample_id
            JOIN analysis_batch b ON b.id = r.batch_id
            JOIN method_version mv ON mv.id = r.method_version_id
            LEFT JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
            WHERE s.kind = 'field_duplicate' AND s.duplicate_of_id IS NOT NULL AND {current('r')}
              AND r.entered_at <= :until) o
        WHERE o.value_of_original IS NOT NULL AND o.duplicate_rd_limits = '[]'
          AND NOT (o.mdl IS NOT NULL AND {first} < {mdl} AND {own} < {mdl})
          AND {first} + {own} > 0 AND abs({first} - {own}) / ({first} + {own}) * 100 > :rd_pct"""
    return {key for (key,) in conn.execute(text(sql), {"until": ctx.at(ctx.until),
                                                       "multiple": ctx.dec(limits["blank_mdl_multiple"]),
                                                       "rd_pct": ctx.dec(limits["duplicate_rd_pct"])})}


# ---------------------------------------------------------------- copying (A03, A05)


def _sample_results(ctx: Ctx, alias: str = "r") -> tuple[str, str]:
    """Current results of sample positions: (the join, the condition)."""
    return (f"JOIN batch_position bp_{alias} ON bp_{alias}.id = {alias}.position_id AND bp_{alias}.role = 'sample'",
            f"{current(alias)} AND {alias}.sample_id IS NOT NULL")


def _below(ctx: Ctx, alias: str = "r") -> str:
    """Below the MDL: flagged, or a value under the method's MDL."""
    return f"({alias}.below_mdl OR (mp.mdl IS NOT NULL AND {ctx.num(f'{alias}.value')} < {ctx.num('mp.mdl')}))"


@sql_rule("A03")
def identical_results(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    join, where = _sample_results(ctx)
    sql = f"""
        SELECT r.batch_id, r.parameter, min(r.value) FROM analysis_result r {join}
        LEFT JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
        WHERE {where} AND r.entered_at <= :until AND NOT {_below(ctx)}
        GROUP BY r.batch_id, r.parameter, {ctx.num('r.value')}
        HAVING count(DISTINCT r.sample_id) >= :samples"""
    return {f"{batch_id}|{parameter}|{format(Decimal(value).normalize(), 'f')}"
            for batch_id, parameter, value in conn.execute(text(sql), {"until": ctx.at(ctx.until),
                                                                        "samples": _int(limits, "samples")})}


def _local(ctx: Ctx, expr: str) -> str:
    return f"(({expr} AT TIME ZONE 'UTC') AT TIME ZONE '{ctx.tz}')" if ctx.pg else expr


def _last_digit(ctx: Ctx) -> str:
    """The last digit of the value as reported (decimals, significant figures, or as stored)."""
    x = ctx.num("r.value")
    places = (f"CAST(mp.significant_figures - 1 - floor(log(abs({x}))) AS integer)" if ctx.pg
              else f"CAST(mp.significant_figures - 1 - floor(log10(abs({x}))) AS integer)")
    scaled_d = (f"abs({ctx.round_half_even(x, 'mp.decimals')} * power(10::numeric, mp.decimals))" if ctx.pg
                else f"abs(round({x} * power(10, mp.decimals)))")
    scaled_f = (f"abs({ctx.round_half_even(x, places)} * power(10::numeric, {places}))" if ctx.pg
                else f"abs(round({x} * power(10, {places})))")
    return (f"(CASE WHEN mp.decimals IS NOT NULL THEN CAST(round({scaled_d}) AS bigint) % 10 "
            f"WHEN mp.significant_figures IS NOT NULL AND {x} <> 0 THEN CAST(round({scaled_f}) AS bigint) % 10 "
            f"ELSE CAST(substr(r.value, length(r.value), 1) AS integer) END)")


@sql_rule("A05")
def digit_preference(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    join, where = _sample_results(ctx)
    if ctx.pg:
        local = _local(ctx, "r.entered_at")
        year = f"CAST(extract(year FROM {local}) AS integer)"
        quarter = f"CAST(extract(quarter FROM {local}) AS integer)"
    else:
        shift = f"'{ctx.offset_hours:+d} hours'"
        year = f"CAST(strftime('%Y', r.entered_at, {shift}) AS integer)"
        quarter = f"((CAST(strftime('%m', r.entered_at, {shift}) AS integer) + 2) / 3)"
    sql = f"""
        WITH digits AS (
            SELECT b.analyst_id, r.parameter, {year} AS y, {quarter} AS q, {_last_digit(ctx)} AS digit
            FROM analysis_result r {join}
            JOIN analysis_batch b ON b.id = r.batch_id
            LEFT JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
            WHERE {where} AND r.entered_at <= :until AND NOT {_below(ctx)}),
        counted AS (SELECT analyst_id, parameter, y, q, digit, count(*) AS o FROM digits
                    GROUP BY analyst_id, parameter, y, q, digit)
        SELECT analyst_id, parameter, y, q FROM counted GROUP BY analyst_id, parameter, y, q
        HAVING sum(o) >= :min_n AND 10.0 * sum(o * o) / sum(o) - sum(o) > :chi2"""
    rows = conn.execute(text(sql), {"until": ctx.at(ctx.until), "min_n": _int(limits, "min_n"),
                                    "chi2": ctx.dec(limits["chi2"])})
    return {f"{analyst}|{parameter}|{y}Q{q}" for analyst, parameter, y, q in rows}


# ---------------------------------------------------------------- timing (A09–A12)


def _hours_between(ctx: Ctx, later: str, earlier: str) -> str:
    if ctx.pg:
        return f"(extract(epoch FROM ({later} - {earlier})) / 3600.0)"
    return f"((julianday({later}) - julianday({earlier})) * 24.0)"


@sql_rule("A09")
def time_travel(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    join, where = _sample_results(ctx)
    sql = f"""
        SELECT DISTINCT 'analysis:' || r.batch_id || ':' || r.sample_id FROM analysis_result r {join}
        JOIN analysis_batch b ON b.id = r.batch_id JOIN sample s ON s.id = r.sample_id
        WHERE {where} AND r.entered_at <= :until
          AND (r.measured_at < s.collected_at OR r.measured_at < s.received_at
               OR b.started_at < s.collected_at OR b.started_at < s.received_at)
        UNION
        SELECT 'receipt:' || s.id FROM sample s WHERE s.received_at < s.collected_at AND s.received_at <= :until
        UNION
        SELECT 'submitted:' || b.id FROM analysis_batch b WHERE b.submitted_at < b.started_at
          AND b.submitted_at <= :until
        UNION
        SELECT DISTINCT 'signature:' || r.batch_id || ':' || '0' FROM analysis_result r
        JOIN analysis_batch b ON b.id = r.batch_id
        WHERE r.entered_at <= :until AND {current('r')} AND b.signature_id IS NULL AND b.submitted_at IS NOT NULL
          AND r.entered_at > b.submitted_at AND (r.revision = 1 OR r.reason = '')"""
    keys = {key for (key,) in conn.execute(text(sql), {"until": ctx.at(ctx.until)})}
    # batches signed with an e-signature: a result entered after it (whether the signature still
    # holds is the signature service's question, not SQL's: listed here, judged by the rule)
    signed = f"""
        SELECT DISTINCT r.batch_id, b.signature_id FROM analysis_result r JOIN analysis_batch b ON b.id = r.batch_id
        JOIN e_signature sig ON sig.id = b.signature_id
        WHERE r.entered_at <= :until AND {current('r')} AND r.entered_at > sig.signed_at"""
    keys |= {f"signature:{batch_id}:{sig}" for batch_id, sig in conn.execute(text(signed),
                                                                              {"until": ctx.at(ctx.until)})}
    return keys


@sql_rule("A10")
def holding_time_exceeded(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    join, where = _sample_results(ctx)
    analysed, collected = "COALESCE(b.started_at, r.measured_at)", "COALESCE(s.collected_at, c.started_at)"
    sql = f"""
        SELECT DISTINCT r.sample_id, r.parameter, r.batch_id FROM analysis_result r {join}
        JOIN analysis_batch b ON b.id = r.batch_id JOIN sample s ON s.id = r.sample_id
        JOIN holding_clock c ON c.sample_id = r.sample_id AND c.parameter = r.parameter
        WHERE {where} AND r.entered_at <= :until AND c.allowed_hours IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM holding_deviation d WHERE d.sample_id = r.sample_id
                          AND d.parameter = r.parameter)
          AND {_hours_between(ctx, analysed, collected)} > c.allowed_hours"""
    return {f"{sid}:{parameter}:{bid}" for sid, parameter, bid in conn.execute(text(sql),
                                                                               {"until": ctx.at(ctx.until)})}


@sql_rule("A11")
def changed_after_review(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    from app.reports.models import ReviewLevel, ReviewOutcome

    sql = """
        WITH late AS (
            SELECT r.id, r.sample_id, r.entered_at,
                   (SELECT max(a.acted_at) FROM review_act a JOIN report_sample rs ON rs.report_id = a.report_id
                     WHERE rs.sample_id = r.sample_id AND a.level = :level AND a.outcome = :outcome
                       AND a.acted_at < r.entered_at) AS checked_at
            FROM analysis_result r WHERE r.revision > 1 AND r.sample_id IS NOT NULL AND r.entered_at <= :until)
        SELECT l.id FROM late l WHERE l.checked_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM review_act a JOIN report_sample rs ON rs.report_id = a.report_id
             WHERE rs.sample_id = l.sample_id AND a.outcome = :returned
               AND a.acted_at > l.checked_at AND a.acted_at <= l.entered_at)"""
    return {str(rid) for (rid,) in conn.execute(text(sql), {
        "until": ctx.at(ctx.until), "level": ReviewLevel.CHECK.value, "outcome": ReviewOutcome.SIGNED.value,
        "returned": ReviewOutcome.RETURNED.value})}


@sql_rule("A12")
def bulk_or_backdated(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    count, minutes = _int(limits, "bulk_count"), _int(limits, "bulk_minutes")
    day_start, day_end = _int(limits, "day_start"), _int(limits, "day_end")
    if ctx.pg:
        local = _local(ctx, "entered_at")
        hour, dow = f"extract(hour FROM {local})", f"extract(dow FROM {local})"
        order, frame = "entered_at", f"RANGE BETWEEN interval '{minutes * 60} seconds' PRECEDING AND CURRENT ROW"
    else:
        shift = f"'{ctx.offset_hours:+d} hours'"
        hour = f"CAST(strftime('%H', entered_at, {shift}) AS integer)"
        dow = f"CAST(strftime('%w', entered_at, {shift}) AS integer)"
        order, frame = "julianday(entered_at) * 86400.0", f"RANGE BETWEEN {minutes * 60} PRECEDING AND CURRENT ROW"
    bulk = f"""
        WITH off AS (
            SELECT entered_by_id AS u, entered_at, id,
                   row_number() OVER (PARTITION BY entered_by_id ORDER BY entered_at, id) AS seq
            FROM analysis_result
            WHERE entered_at <= :until AND ({dow} IN (0, 6) OR {hour} < {day_start} OR {hour} >= {day_end})),
        reach AS (
            SELECT u, id, seq, min(seq) OVER (PARTITION BY u ORDER BY {order} {frame}) AS first_seq FROM off),
        triggers AS (
            SELECT u, seq, first_seq, lag(seq) OVER (PARTITION BY u ORDER BY seq) AS previous
            FROM reach WHERE seq - first_seq + 1 >= {count})
        SELECT t.u, o.id FROM triggers t JOIN off o ON o.u = t.u AND o.seq = t.first_seq
        WHERE t.previous IS NULL OR t.first_seq > t.previous"""
    keys = {f"bulk:{user}:{rid}" for user, rid in conn.execute(text(bulk), {"until": ctx.at(ctx.until)})}
    lag_hours = limits["backdate_hours"]
    backdated = f"""
        SELECT DISTINCT batch_id, entered_by_id FROM analysis_result
        WHERE revision = 1 AND entered_at <= :until
          AND {_hours_between(ctx, 'entered_at', 'measured_at')} > :hours"""
    keys |= {f"backdate:{bid}:{user}" for bid, user in conn.execute(text(backdated), {
        "until": ctx.at(ctx.until), "hours": ctx.dec(lag_hours)})}
    return keys


# ---------------------------------------------------------------- copied series (A04)


@sql_rule("A04", engines=("postgresql",))
def copied_series(conn: Connection, limits: Limits, ctx: Ctx) -> set[str]:
    """Windows of k consecutive values (and of their k − 1 differences) as numeric arrays; each
    window matched with its first occurrence in an earlier series of the parameter; aligned
    matches grouped into runs (gaps and islands); shifted runs inside an equal run dropped. The
    arrays compare exactly, so a match needs no second check on the earlier values."""
    k = _int(limits, "run")
    join, where = _sample_results(ctx)
    v = ctx.num("r.value")
    sql = f"""
        WITH series AS (
            SELECT r.parameter, r.batch_id, bp_r.id AS position_id,
                   dense_rank() OVER (PARTITION BY r.parameter ORDER BY b.submitted_at, r.batch_id) AS ord,
                   row_number() OVER (PARTITION BY r.parameter, r.batch_id ORDER BY bp_r.position) - 1 AS idx,
                   CASE WHEN {_below(ctx)} THEN NULL ELSE {v} END AS x
            FROM analysis_result r {join}
            JOIN analysis_batch b ON b.id = r.batch_id
            LEFT JOIN method_parameter mp ON mp.method_version_id = r.method_version_id AND mp.parameter = r.parameter
            WHERE {where} AND b.submitted_at IS NOT NULL AND b.submitted_at <= :until),
        stepped AS (
            SELECT *, x - lag(x) OVER (PARTITION BY parameter, batch_id ORDER BY idx) AS dx FROM series),
        windows AS (
            SELECT parameter, batch_id, ord, idx - {k - 1} AS start,
                   count(x) OVER w AS n, min(x) OVER w AS lo, max(x) OVER w AS hi,
                   array_agg(x) OVER w AS vals,
                   array_agg(dx) OVER (PARTITION BY parameter, batch_id ORDER BY idx
                                       ROWS BETWEEN {k - 2} PRECEDING AND CURRENT ROW) AS diffs
            FROM stepped
            WINDOW w AS (PARTITION BY parameter, batch_id ORDER BY idx ROWS BETWEEN {k - 1} PRECEDING AND CURRENT ROW)),
        good AS (SELECT * FROM windows WHERE start >= 0 AND n = {k} AND lo <> hi),
        first_equal AS (
            SELECT DISTINCT ON (parameter, vals) parameter, vals, ord, batch_id, start FROM good
            ORDER BY parameter, vals, ord, start),
        first_shift AS (
            SELECT DISTINCT ON (parameter, diffs) parameter, diffs, ord, batch_id, start FROM good
            ORDER BY parameter, diffs, ord, start),
        matches AS (
            SELECT 'equal' AS kind, g.parameter, g.batch_id, g.start, f.batch_id AS e_batch, f.start AS e_start
            FROM good g JOIN first_equal f ON f.parameter = g.parameter AND f.vals = g.vals AND f.ord < g.ord
            UNION ALL
            SELECT 'shift', g.parameter, g.batch_id, g.start, f.batch_id, f.start
            FROM good g JOIN first_shift f ON f.parameter = g.parameter AND f.diffs = g.diffs AND f.ord < g.ord),
        flagged AS (
            SELECT *, CASE WHEN lag(start) OVER p = start - 1 AND lag(e_batch) OVER p = e_batch
                                AND lag(e_start) OVER p = e_start - 1 THEN 0 ELSE 1 END AS new_run
            FROM matches WINDOW p AS (PARTITION BY kind, parameter, batch_id ORDER BY start)),
        numbered AS (
            SELECT *, sum(new_run) OVER (PARTITION BY kind, parameter, batch_id ORDER BY start) AS run_no FROM flagged),
        runs AS (
            SELECT kind, parameter, batch_id, min(start) AS start, min(e_batch) AS e_batch, min(e_start) AS e_start,
                   count(*) + {k - 1} AS length
            FROM numbered GROUP BY kind, parameter, batch_id, run_no)
        SELECT s.parameter, s.batch_id, s.start, s.e_batch, s.e_start, s.length FROM runs s
        WHERE s.kind = 'equal' OR EXISTS (
            SELECT 1 FROM generate_series(s.start, s.start + s.length - 1) i
            WHERE NOT EXISTS (SELECT 1 FROM runs q WHERE q.kind = 'equal' AND q.parameter = s.parameter
                              AND q.batch_id = s.batch_id AND i BETWEEN q.start AND q.start + q.length - 1))"""
    runs = conn.execute(text(sql), {"until": ctx.at(ctx.until)}).all()
    if not runs:
        return set()
    positions = f"""
        SELECT r.batch_id, r.parameter, bp_r.id FROM analysis_result r {join}
        WHERE {where} AND r.batch_id IN :batches ORDER BY r.batch_id, r.parameter, bp_r.position"""
    series: dict[tuple[int, str], list[int]] = {}
    batches = sorted({run[1] for run in runs} | {run[3] for run in runs})
    for batch_id, parameter, position_id in conn.execute(
            text(positions).bindparams(bindparam("batches", expanding=True)), {"batches": batches}):
        series.setdefault((batch_id, parameter), []).append(position_id)
    keys = set()
    for parameter, batch_id, start, e_batch, e_start, length in runs:
        mine = series[(batch_id, parameter)][start:start + length]
        theirs = series[(e_batch, parameter)][e_start:e_start + length]
        keys.add(f"{parameter}|{','.join(map(str, mine))}|{','.join(map(str, theirs))}")
    return keys
