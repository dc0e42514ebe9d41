"""Property tests (hypothesis) for the pure logic of the chain: canonical JSON and tamper
evidence. No database: the real verify_chain runs over an in-memory list of rows."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.core import audit
from app.core.canonical import ISO_UTC, canonical_json

COLUMNS = audit._VERIFY_COLUMNS  # the stored fields, in the order verify reads them

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63)
                | st.text(max_size=12) | st.decimals(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _reorder(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(k, _reorder(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_reorder(v, rnd) for v in value]
    return value


@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_is_stable_under_key_order(value, rnd):
    assert canonical_json(_reorder(value, rnd)) == canonical_json(value)


@given(json_values)
def test_canonical_json_has_no_whitespace_outside_strings_and_decimals_as_strings(value):
    import json

    text = canonical_json(value)
    reparsed = json.loads(text)
    assert canonical_json(reparsed) == text  # a fixed point: keys sorted, no whitespace
    assert json.dumps(reparsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == text
    if isinstance(value, Decimal):
        assert reparsed == str(value)


# ---------------------------------------------------------------- tamper evidence

payloads = st.none() | st.dictionaries(
    st.text(max_size=6), st.none() | st.integers() | st.text(max_size=6) | st.decimals(
        allow_nan=False, allow_infinity=False, places=3), max_size=3)
event_fields = st.fixed_dictionaries({
    "occurred_at": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                timezones=st.just(UTC)),
    "actor_id": st.none() | st.integers(1, 2**31 - 1),
    "actor": st.text(min_size=1, max_size=12),
    "action": st.text(min_size=1, max_size=12),
    "entity_type": st.text(min_size=1, max_size=10),
    "entity_id": st.text(min_size=1, max_size=10),
    "before": payloads.map(canonical_json),
    "after": payloads.map(canonical_json),
})


def build_chain(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chain, prev = [], audit.GENESIS_HASH
    for seq, fields in enumerate(events, start=1):
        row = {"seq": seq, **fields, "prev_hash": prev}
        row["hash"] = audit.chain_hash(prev, audit.event_canonical(
            *(row[c] for c in COLUMNS[:-2])))
        chain.append(row)
        prev = row["hash"]
    return chain


class _NoCheckpoints:
    info: dict[str, Any] = {}

    def scalars(self, _stmt: Any) -> Any:
        return mock.Mock(all=lambda: [])


def verify(chain: list[dict[str, Any]]) -> audit.VerifyResult:
    """The real verify_chain over every stored row, in seq order (as the table holds them)."""
    def stored_rows(_session: Any, batch: int = 5000):
        for row in sorted(chain, key=lambda r: r["seq"]):
            yield tuple(row[c] for c in COLUMNS)

    with mock.patch.object(audit, "_iter_rows", stored_rows):
        return audit.verify_chain(_NoCheckpoints(), None)  # type: ignore[arg-type]


def _change_byte(data: bytes, index: int, new: int) -> bytes:
    index %= len(data)
    assume(data[index] != new)
    return data[:index] + bytes([new]) + data[index + 1:]


def mutate(value: Any, field: str, index: int, new: int) -> Any:
    """`value` with one byte of its stored representation replaced."""
    if field == "seq":
        return struct.unpack(">q", _change_byte(struct.pack(">q", value), index, new))[0]
    if field == "actor_id":
        assume(value is not None)  # NULL has no bytes to change
        return struct.unpack(">i", _change_byte(struct.pack(">i", value), index, new))[0]
    if field == "occurred_at":
        text = _change_byte(value.strftime(ISO_UTC).encode(), index, new)
        try:
            changed = datetime.strptime(text.decode(), ISO_UTC).replace(tzinfo=UTC)
        except (UnicodeDecodeError, ValueError):
            assume(False)
        assume(changed != value)  # e.g. "05" -> " 5" parses to the same instant
        return changed
    data = _change_byte(value.encode(), index, new)
    try:
        return data.decode()
    except UnicodeDecodeError:
        assume(False)


@settings(max_examples=150, deadline=None)
@given(st.lists(event_fields, min_size=1, max_size=6), st.data())
def test_any_single_byte_change_is_detected_at_that_event(events, data):
    chain = build_chain(events)
    assert verify(chain).ok and verify(chain).events == len(chain)

    victim = data.draw(st.integers(0, len(chain) - 1), label="event index")
    field = data.draw(st.sampled_from(COLUMNS), label="field")
    index = data.draw(st.integers(0, 63), label="byte index")
    new = data.draw(st.integers(0, 255), label="new byte")
    original = chain[victim]
    changed = mutate(original[field], field, index, new)
    assert changed != original[field]
    if field == "seq":
        assume(changed not in {r["seq"] for r in chain})  # the primary key forbids duplicates
    chain[victim] = {**original, field: changed}

    result = verify(chain)
    assert not result.ok
    assert result.first_bad_seq == original["seq"], result.reason


@settings(deadline=None)
@given(st.lists(event_fields, min_size=2, max_size=6), st.data())
def test_deleting_or_swapping_events_is_detected_at_the_first_affected_seq(events, data):
    chain = build_chain(events)
    i = data.draw(st.integers(0, len(chain) - 2))
    j = data.draw(st.integers(i + 1, len(chain) - 1))
    swapped = [dict(r) for r in chain]
    for key in COLUMNS[1:]:
        swapped[i][key], swapped[j][key] = chain[j][key], chain[i][key]
    assert verify(swapped).first_bad_seq == i + 1

    deleted = chain[:i] + chain[i + 1:]
    assert verify(deleted).first_bad_seq == i + 1


def test_verify_reports_a_shifted_timestamp():
    chain = build_chain([{"occurred_at": datetime(2024, 1, 1, tzinfo=UTC), "actor_id": 1,
                          "actor": "a", "action": "x", "entity_type": "e", "entity_id": "1",
                          "before": "null", "after": "null"}])
    chain[0]["occurred_at"] += timedelta(microseconds=1)
    assert verify(chain).first_bad_seq == 1
