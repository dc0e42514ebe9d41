"""The audit explorer: an entity's history with its changes highlighted, who did what in a
window, and the chain's status (a tampered event shows as a break on every explorer page)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from app.core import audit
from app.core.errors import InvalidInput, PermissionDenied
from app.oversight import explorer
from app.oversight.explorer import FieldChange, diff_states
from tests.conftest import login
from tests.core.chain_tools import rows, tamper_after, unprotected

# ---------------------------------------------------------------- differences (pure)


def test_diff_flattens_nested_objects_to_dotted_paths():
    before = {"state": "draft", "limits": {"low": "1", "high": "5"}, "gone": 1}
    after = {"state": "issued", "limits": {"low": "1", "high": "6", "unit": "mg/L"}, "new": None}
    assert diff_states(before, after) == [
        FieldChange("gone", 1, None, "removed"),
        FieldChange("limits.high", "5", "6", "changed"),
        FieldChange("limits.unit", None, "mg/L", "added"),
        FieldChange("new", None, None, "added"),
        FieldChange("state", "draft", "issued", "changed"),
    ]


def test_lists_of_values_compare_as_wholes_and_lists_of_objects_item_by_item():
    assert diff_states({"p": ["NH3-N"]}, {"p": ["NH3-N", "TN"]}) == [
        FieldChange("p", ["NH3-N"], ["NH3-N", "TN"], "changed")]
    assert diff_states({"p": ["a"]}, {"p": ["a"]}) == []
    rows_before = {"rows": [{"v": "1"}, {"v": "2"}]}
    rows_after = {"rows": [{"v": "1"}, {"v": "3"}, {"v": "4"}]}
    assert diff_states(rows_before, rows_after) == [
        FieldChange("rows[1].v", "2", "3", "changed"),
        FieldChange("rows[2].v", None, "4", "added"),
    ]


def test_a_creation_lists_every_field_as_added_and_a_type_change_is_a_change():
    assert diff_states(None, {"a": 1, "b": {"c": 2}}) == [
        FieldChange("a", None, 1, "added"), FieldChange("b.c", None, 2, "added")]
    assert diff_states({"a": 1}, {"a": "1"}) == [FieldChange("a", 1, "1", "changed")]
    assert diff_states({"a": 1}, {"a": True}) == [FieldChange("a", 1, True, "changed")]
    assert diff_states(None, None) == []
    assert diff_states("x", "y") == [FieldChange("", "x", "y", "changed")]


# ---------------------------------------------------------------- entity history


def _events(db, actor, entity_type: str, entity_id: str, states: list, *, before_none: bool = False) -> None:
    """One event per state, each recording the previous state as its before (or None)."""
    previous = None
    for i, state in enumerate(states):
        with db.transaction() as session:
            audit.append(session, actor, f"{entity_type}.step{i}", entity_type, entity_id,
                         None if before_none else previous, state)
        previous = state


def test_history_is_oldest_first_with_each_events_changes(db, users):
    qm = users["quality_manager"]
    _events(db, users["analyst"], "sample", "7", [{"state": "registered", "site_id": 3},
                                                  {"state": "received", "site_id": 3},
                                                  {"state": "received", "site_id": 4}])
    with db.reading() as session:
        history = explorer.entity_history(session, qm, "sample", "7")
        assert [e.event.action for e in history.entries] == ["sample.step0", "sample.step1", "sample.step2"]
    assert [e.baseline for e in history.entries] == ["none", "event", "event"]
    assert history.entries[1].changes == [FieldChange("state", "registered", "received", "changed")]
    assert history.entries[2].changes == [FieldChange("site_id", 3, 4, "changed")]
    assert history.total == 3 and history.older_cursor is None


def test_an_event_without_a_before_is_compared_with_the_previous_after(db, users):
    _events(db, users["analyst"], "report", "R1", [{"state": "draft"}, {"state": "checked"}], before_none=True)
    with db.reading() as session:
        history = explorer.entity_history(session, users["quality_manager"], "report", "R1")
    assert [e.baseline for e in history.entries] == ["none", "previous"]
    assert history.entries[1].changes == [FieldChange("state", "draft", "checked", "changed")]


def test_an_event_without_a_before_is_compared_with_what_earlier_events_recorded(db, users):
    """Events that record only what they touch: the state is compared with the state recorded
    two events earlier, and fields the event does not record are not shown as removed."""
    _events(db, users["analyst"], "report", "R2",
            [{"state": "draft", "title": "月报"}, {"signature_id": 5}, {"state": "checked"}], before_none=True)
    with db.reading() as session:
        history = explorer.entity_history(session, users["quality_manager"], "report", "R2")
    assert history.entries[1].changes == [FieldChange("signature_id", None, 5, "added")]
    assert history.entries[2].changes == [FieldChange("state", "draft", "checked", "changed")]


def test_history_pages_keep_the_previous_event_for_the_first_diff(db, users):
    _events(db, None, "site", "9", [{"n": i} for i in range(5)], before_none=True)
    with db.reading() as session:
        newest = explorer.entity_history(session, users["quality_manager"], "site", "9", limit=2)
        assert [e.event.after_data["n"] for e in newest.entries] == [3, 4]
        assert newest.entries[0].baseline == "previous"
        assert newest.entries[0].changes == [FieldChange("n", 2, 3, "changed")]
        older = explorer.entity_history(session, users["quality_manager"], "site", "9",
                                        before_seq=newest.older_cursor, limit=2)
        assert [e.event.after_data["n"] for e in older.entries] == [1, 2]
        first = explorer.entity_history(session, users["quality_manager"], "site", "9",
                                        before_seq=older.older_cursor, limit=2)
        assert [e.event.after_data["n"] for e in first.entries] == [0] and first.older_cursor is None


def test_history_needs_audit_read_and_sane_input(db, users):
    with db.reading() as session:
        with pytest.raises(PermissionDenied):
            explorer.entity_history(session, users["analyst"], "sample", "1")
        with pytest.raises(InvalidInput):
            explorer.entity_history(session, users["quality_manager"], "sample", "1", limit=0)
        with pytest.raises(InvalidInput):
            explorer.entity_history(session, users["quality_manager"], "x" * 65, "1")


def test_the_history_page_highlights_changes_and_links_each_event(client, db, users, count_queries):
    _events(db, users["analyst"], "sample", "41", [{"state": "registered", "batch_id": 12},
                                                   {"state": "received", "batch_id": 12}])
    with db.transaction() as session:  # the batch it names has a history of its own
        audit.append(session, None, "analysis_batch.created", "analysis_batch", "12", None, {"no": "AB1"})
    login(client, users["inspector"].username)
    page = client.get("/oversight/audit/entity/sample/41")
    assert page.status_code == 200, page.text
    text = page.text
    assert text.count('class="history-event"') == 2
    seqs = re.findall(r'data-seq="(\d+)"', text)
    assert seqs == sorted(seqs, key=int)  # oldest first
    for seq in seqs:
        assert f'href="/oversight/audit/{seq}"' in text
    assert '<del>registered</del>' in text and '<ins>received</ins>' in text
    assert 'class="kind-changed" data-path="state"' in text
    assert 'data-baseline="none"' in text and 'data-baseline="event"' in text
    assert 'href="/oversight/audit/entity/analysis_batch/12"' in text  # related record
    assert 'data-chain="ok"' in text


def test_the_history_page_runs_the_same_queries_for_1_and_30_events(client, db, users, count_queries):
    _events(db, users["analyst"], "sample", "1", [{"v": 0, "site_id": 5}])
    _events(db, users["analyst"], "sample", "2", [{"v": i, "site_id": 5} for i in range(30)])
    login(client, users["quality_manager"].username)
    counts = []
    for entity_id, events in (("1", 1), ("2", 30)):
        with count_queries() as counted:
            page = client.get(f"/oversight/audit/entity/sample/{entity_id}")
        assert page.status_code == 200 and page.text.count('class="history-event"') == events
        counts.append(counted.count)
    assert counts[0] == counts[1], counts
    assert counts[0] <= 14, counts


def test_history_page_refuses_an_analyst_and_ugly_input(client, db, users):
    login(client, users["analyst"].username)
    assert client.get("/oversight/audit/entity/sample/1").status_code == 403
    login(client, users["technical_manager"].username)
    assert client.get("/oversight/audit/entity/sample/1?before=0").status_code == 422
    assert client.get(f"/oversight/audit/entity/sample/{'9' * 70}").status_code == 422
    assert client.get("/oversight/audit/entity/sample/1?before=abc").status_code == 422
    empty = client.get("/oversight/audit/entity?entity_type=&entity_id=")
    assert empty.status_code == 303 and empty.headers["location"] == "/oversight/audit/explorer"
    found = client.get("/oversight/audit/entity?entity_type=sample&entity_id=1")
    assert found.status_code == 303 and found.headers["location"] == "/oversight/audit/entity/sample/1"
    assert client.get("/oversight/audit/explorer").status_code == 200


# ---------------------------------------------------------------- who did what


def _at(db, actor, action: str, when: datetime, entity_id: str = "1") -> None:
    with db.transaction() as session:
        audit.append(session, actor, action, "sample", entity_id, None, {"a": action}, at=when)


def test_activity_counts_per_user_and_action_in_the_window(db, users):
    now = datetime.now(UTC)
    analyst, checker = users["analyst"], users["checker"]
    for _ in range(3):
        _at(db, analyst, "result.entered", now - timedelta(hours=2))
    _at(db, analyst, "batch.signed", now - timedelta(hours=1))
    _at(db, checker, "report.checked", now - timedelta(hours=1))
    _at(db, checker, "report.checked", now - timedelta(days=3))  # outside the window
    with db.reading() as session:
        activity = explorer.actor_activity(session, users["quality_manager"], who="", start=now - timedelta(days=1),
                                           end=now, action_prefix="re")
        assert [(u.actor, u.total) for u in activity.users] == [(analyst.username, 3), (checker.username, 1)]
        activity = explorer.actor_activity(session, users["quality_manager"], who="", start=now - timedelta(days=1),
                                           end=now)
        by_user = {u.actor: u for u in activity.users}
        assert by_user[analyst.username].total == 4 and by_user[checker.username].total == 1
        assert [(a.action, a.count) for a in by_user[analyst.username].actions] == [("result.entered", 3),
                                                                                      ("batch.signed", 1)]
        only = explorer.actor_activity(session, users["quality_manager"], who=checker.username.upper(),
                                       start=now - timedelta(days=7), end=now, action_prefix="report.")
        assert [(u.actor, u.total) for u in only.users] == [(checker.username, 2)]
        paged = explorer.actor_activity(session, users["quality_manager"], who=analyst.username,
                                        start=now - timedelta(days=1), end=now, limit=3)
        assert len(paged.events) == 3 and paged.next_cursor is not None
        rest = explorer.actor_activity(session, users["quality_manager"], who=analyst.username,
                                       start=now - timedelta(days=1), end=now, limit=3,
                                       before_seq=paged.next_cursor)
        assert len(rest.events) == 1 and rest.next_cursor is None
        assert [e.action for e in rest.events] == ["result.entered"]


def test_activity_refuses_a_reversed_or_too_long_window(db, users):
    now = datetime.now(UTC)
    with db.reading() as session:
        for start, end in ((now, now - timedelta(hours=1)), (now - timedelta(days=400), now)):
            with pytest.raises(InvalidInput):
                explorer.actor_activity(session, users["quality_manager"], who="", start=start, end=end)


def test_the_activity_page(client, db, users, count_queries):
    now = datetime.now(UTC)
    _at(db, users["analyst"], "result.entered", now - timedelta(hours=1), "5")
    login(client, users["inspector"].username)
    with count_queries() as counted:
        page = client.get("/oversight/audit/activity?action=result.")
    assert page.status_code == 200, page.text
    assert f'data-actor="{users["analyst"].username}"' in page.text
    assert 'data-count="result.entered">×1<' in page.text
    assert 'href="/oversight/audit/entity/sample/5#seq-' in page.text
    assert 'type="datetime-local" name="from"' in page.text
    for _ in range(20):
        _at(db, users["checker"], "result.checked", now - timedelta(minutes=30))
    with count_queries() as busier:
        page = client.get("/oversight/audit/activity?action=result.")
    assert page.text.count('class="event-row"') == 21
    assert counted.count == busier.count, (counted.count, busier.count)


@pytest.mark.parametrize("query", ["from=2026-12-05T00:00&to=2026-12-04T00:00",
                                   "from=2024-01-01T00:00&to=2026-12-04T00:00",
                                   "from=yesterday", "to=2026-13-40T00:00"])
def test_the_activity_page_refuses_bad_windows_with_422(client, users, query):
    login(client, users["quality_manager"].username)
    page = client.get(f"/oversight/audit/activity?{query}")
    assert page.status_code == 422, page.text


def test_the_activity_page_reads_lab_time(client, db, users, settings):
    """An event at 01:30 UTC is 09:30 in Shanghai: a window 09:00–10:00 lab time finds it."""
    _at(db, users["analyst"], "result.entered", datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    login(client, users["quality_manager"].username)
    inside = client.get("/oversight/audit/activity?from=2026-03-02T09:00&to=2026-03-02T10:00")
    outside = client.get("/oversight/audit/activity?from=2026-03-02T01:00&to=2026-03-02T02:00")
    assert inside.text.count('class="event-row"') == 1
    assert outside.text.count('class="event-row"') == 0


def test_the_activity_page_refuses_an_analyst(client, users):
    login(client, users["analyst"].username)
    assert client.get("/oversight/audit/activity").status_code == 403


# ---------------------------------------------------------------- chain status


def test_chain_status_verifies_from_the_newest_checkpoint(db, users, settings):
    _events(db, None, "sample", "3", [{"i": i} for i in range(4)])
    key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
    with db.transaction() as session:
        anchored = audit.head(session)[0]
        audit.create_checkpoint(session, None, key)
    _events(db, None, "sample", "3", [{"i": 9}])
    with db.reading() as session:
        status = explorer.chain_status(session, key)
        assert status.ok and status.complete and status.broken is None
        assert status.checkpoint.seq == anchored and status.verified_from == anchored
        assert status.verified_seq == status.head_seq == anchored + 2
    with db.reading() as session:
        assert explorer.chain_status(session, b"wrong key").checkpoint_signature_ok is False


def test_a_tampered_event_shows_as_a_break_on_the_explorer_pages(client, db, users):
    _events(db, users["analyst"], "sample", "8", [{"i": i} for i in range(4)])
    seq = [r["seq"] for r in rows(db) if r["entity_id"] == "8"][2]
    tamper_after(db, seq, json.dumps({"i": 300}, separators=(",", ":")))
    with db.reading() as session:
        status = explorer.chain_status(session)
    assert status.broken is not None and status.broken.seq == seq and not status.ok
    assert status.broken.stored_hash != status.broken.expected_hash and status.broken.expected_hash
    login(client, users["quality_manager"].username)
    for url in ("/oversight/audit/explorer", "/oversight/audit/entity/sample/8", "/oversight/audit/activity"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert 'data-chain="broken"' in page.text, url
        assert f"#{seq}" in page.text and status.broken.stored_hash in page.text


def test_a_tampered_checkpointed_event_is_a_break(db, users, settings):
    _events(db, None, "sample", "3", [{"i": i} for i in range(3)])
    with db.transaction() as session:
        anchored = audit.head(session)[0]
        audit.create_checkpoint(session, None, b"k")
    with unprotected(db) as conn:
        conn.execute(audit.AuditEvent.__table__.update().where(audit.AuditEvent.__table__.c.seq == anchored)
                     .values(hash="f" * 64))
    with db.reading() as session:
        status = explorer.chain_status(session, b"k")
    assert status.broken is not None and status.broken.seq == anchored
    assert status.broken.stored_hash == "f" * 64
