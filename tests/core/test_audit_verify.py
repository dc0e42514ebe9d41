"""`lims audit verify`: exit 0 with `OK <n> events, head <hash>`, or exit 1 naming the first bad
seq. Tampering goes through a raw connection with the append-only triggers dropped."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from app.core import audit
from tests.core.chain_tools import (
    EVENTS,
    add_events,
    delete_event,
    rows,
    run_cli,
    swap_events,
    tamper_after,
    unprotected,
)


@pytest.fixture
def chain(db):
    add_events(db, 6)
    return rows(db)


def assert_fails_at(settings, seq: int) -> str:
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert f"FAIL at seq {seq}:" in result.stdout
    return result.stdout


def test_verify_ok_prints_count_and_head(settings, chain):
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"OK 6 events, head {chain[-1]['hash']}"


def test_verify_an_empty_trail(settings, db):
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"OK 0 events, head {audit.GENESIS_HASH}"


def test_changed_after_json_fails_at_that_seq(settings, db, chain):
    tamper_after(db, 4, json.dumps({"i": 300}, separators=(",", ":")))
    assert "altered" in assert_fails_at(settings, 4)


def test_a_whitespace_only_change_is_still_a_change(settings, db, chain):
    tamper_after(db, 2, chain[1]["after"].replace(":", ": "))
    assert_fails_at(settings, 2)


def test_deleted_event_fails_at_that_seq(settings, db, chain):
    delete_event(db, 3)
    assert "missing" in assert_fails_at(settings, 3)


def test_reordered_events_fail_at_the_first_swapped_seq(settings, db, chain):
    swap_events(db, 2, 5)
    assert_fails_at(settings, 2)


def test_swapping_neighbours_fails_at_the_first(settings, db, chain):
    swap_events(db, 5, 6)
    assert_fails_at(settings, 5)


@pytest.mark.parametrize("new_seq", [0, -6])
def test_an_event_renumbered_out_of_the_chain_is_not_overlooked(settings, db, chain, new_seq):
    """A row whose seq was moved below 1 still sits in the table; verify must not skip it."""
    with unprotected(db) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 6).values(seq=new_seq))
    assert_fails_at(settings, 6)


def test_renumbering_a_middle_event_fails_at_its_seq(settings, db, chain):
    with unprotected(db) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 3).values(seq=-3))
    assert_fails_at(settings, 3)


def test_tampering_helpers_restore_the_triggers(db, chain):
    """Sanity for the tests above: after tampering the table is append-only again."""
    from sqlalchemy.exc import DBAPIError

    tamper_after(db, 1, "{}")
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 1).values(after="null"))
