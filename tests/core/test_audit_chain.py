"""The audit event: seq, UTC time, actor, action, entity, canonical before/after, prev_hash and
hash = SHA-256(prev_hash + canonical) (DESIGN.md rule 5)."""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core import audit
from app.core.canonical import canonical_json
from tests.conftest import make_user
from tests.core.chain_tools import EVENTS, rows

SHANGHAI = timezone(timedelta(hours=8))


def test_canonical_json_form():
    value = {"b": Decimal("1.50"), "a": [1, "x", True, None], "c": {"z": None, "y": "中文"},
             "t": datetime(2024, 3, 1, 8, 0, 0, 5, tzinfo=SHANGHAI)}
    assert canonical_json(value) == (
        '{"a":[1,"x",true,null],"b":"1.50","c":{"y":"中文","z":null},'
        '"t":"2024-03-01T00:00:00.000005Z"}'
    )
    assert canonical_json(None) == "null"


@pytest.mark.parametrize("value", [0.1, float("nan")])
def test_canonical_json_refuses_top_level_floats(value):
    with pytest.raises(TypeError):
        canonical_json(value)


@pytest.mark.parametrize("value", [{"a": 0.1}, [Decimal("1"), 2.5], {"a": {"b": [1e300]}}])
def test_canonical_json_refuses_nested_floats(value):
    with pytest.raises(TypeError):
        canonical_json(value)


class _Ratio(enum.Enum):
    HALF = 0.5


@pytest.mark.parametrize("value", [{"a": {0.5}}, {"a": frozenset([1.5])}, {"a": _Ratio.HALF},
                                   {0.5: "x"}], ids=["set", "frozenset", "enum", "key"])
def test_canonical_json_refuses_floats_wherever_they_hide(value):
    with pytest.raises(TypeError):
        canonical_json(value)


def test_canonical_json_refuses_naive_datetimes():
    with pytest.raises(TypeError):
        canonical_json({"t": datetime(2024, 1, 1)})


def test_event_row_has_every_field_and_its_hash_recomputes(db):
    alice = make_user(db, "alice")
    start_seq, start_hash = rows(db)[-1]["seq"], rows(db)[-1]["hash"]
    at = datetime(2024, 3, 1, 8, 30, 0, 123456, tzinfo=SHANGHAI)  # not UTC on purpose
    with db.transaction() as session:
        audit.append(session, alice, "sample.received", "sample", 42,
                     {"volume_ml": Decimal("500.0"), "state": "collected"},
                     {"state": "received", "volume_ml": Decimal("500.0")}, at=at)
        audit.append(session, None, "system.note", "lab", "L-1", None, {"n": 1})

    first, second = rows(db)[-2:]
    assert first["seq"] == start_seq + 1 and second["seq"] == start_seq + 2
    assert first["occurred_at"] == datetime(2024, 3, 1, 0, 30, 0, 123456, tzinfo=UTC)
    assert first["occurred_at"].utcoffset() == timedelta(0)
    assert (first["actor_id"], first["actor"]) == (alice.id, "alice")
    assert (second["actor_id"], second["actor"]) == (None, "system")
    assert (first["action"], first["entity_type"], first["entity_id"]) == (
        "sample.received", "sample", "42")
    assert first["before"] == '{"state":"collected","volume_ml":"500.0"}'
    assert first["after"] == '{"state":"received","volume_ml":"500.0"}'
    assert first["prev_hash"] == start_hash
    assert second["prev_hash"] == first["hash"]

    # Built by hand, not with event_canonical/chain_hash: the stored hash must be exactly this.
    canonical = (f'[{start_seq + 1},"2024-03-01T00:30:00.123456Z",{alice.id},"alice",'
                 f'"sample.received","sample","42",{first["before"]},{first["after"]}]')
    assert audit.event_canonical(*(first[k] for k in (
        "seq", "occurred_at", "actor_id", "actor", "action", "entity_type", "entity_id",
        "before", "after"))) == canonical
    assert first["hash"] == hashlib.sha256((start_hash + canonical).encode()).hexdigest()
    canonical2 = (f'[{start_seq + 2},"{second["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")}",'
                  f'null,"system","system.note","lab","L-1",null,{{"n":1}}]')
    assert second["hash"] == hashlib.sha256((first["hash"] + canonical2).encode()).hexdigest()

    with db.reading() as session:
        assert audit.verify_chain(session, None).ok


def test_first_event_links_to_genesis(db):
    assert rows(db) == []
    with db.transaction() as session:
        audit.append(session, None, "system.start", "lab", 1, None, None)
    (event,) = rows(db)
    assert event["seq"] == 1 and event["prev_hash"] == audit.GENESIS_HASH == "0" * 64
    assert (event["before"], event["after"]) == ("null", "null")


def test_a_float_is_refused_and_nothing_is_written(db):
    with pytest.raises(TypeError), db.transaction() as session:
        audit.append(session, None, "x.changed", "x", 1, None, 0.5)
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(EVENTS)) == 0


def test_a_rolled_back_change_leaves_no_event(db):
    with pytest.raises(RuntimeError), db.transaction() as session:
        audit.append(session, None, "x.changed", "x", 1, None, {"a": 1})
        raise RuntimeError("the change failed")
    with db.transaction() as session:
        audit.append(session, None, "x.changed", "x", 2, None, {"a": 2})
    (event,) = rows(db)
    assert event["seq"] == 1 and json.loads(event["after"]) == {"a": 2}


# ---------------------------------------------------------------- savepoints


def test_a_savepoint_rolled_back_keeps_the_events_appended_before_it(db):
    """What a transaction appended before a savepoint stays when the savepoint is undone; what
    was appended inside goes with it, even when it had been written; the chain goes on from the
    last event that stays. (A bare SQLAlchemy savepoint loses the buffered events before it once
    anything inside writes the buffer: hence the rule below.)"""
    with db.transaction() as session:
        audit.append(session, None, "test.before", "thing", 1, None, {"n": 1})  # buffered, not written yet
        with pytest.raises(RuntimeError), audit.savepoint(session):
            audit.append(session, None, "test.inside", "thing", 2, None, {"n": 2})
            audit.flush_pending(session)
            audit.append(session, None, "test.inside", "thing", 3, None, {"n": 3})  # still buffered
            raise RuntimeError("undone")
        audit.append(session, None, "test.after", "thing", 4, None, {"n": 4})
    assert [r["action"] for r in rows(db)] == ["test.before", "test.after"]
    with db.reading() as session:
        assert audit.verify_chain(session, None).ok


def test_services_take_savepoints_through_the_audit_module():
    """Every savepoint in the app is `audit.savepoint` (a bare `begin_nested` can drop events)."""
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "app"
    bare = [str(p.relative_to(app)) for p in app.rglob("*.py")
            if "begin_nested(" in p.read_text(encoding="utf-8") and p.name != "audit.py"]
    assert bare == [], bare
