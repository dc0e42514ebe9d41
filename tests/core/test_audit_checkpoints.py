"""Checkpoints anchor the chain: (seq, head hash) HMAC-signed with a key kept outside the
database, so even a consistently rewritten chain is caught."""

from __future__ import annotations

import hmac
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core import audit, jobs
from app.core.db import utcnow
from tests.core.chain_tools import (
    add_events,
    delete_event,
    rewrite_chain,
    rows,
    run_cli,
    tamper_after,
)


def checkpoints(db) -> list[audit.AuditCheckpoint]:
    with db.reading() as session:
        found = list(session.scalars(
            select(audit.AuditCheckpoint).order_by(audit.AuditCheckpoint.id)))
        session.expunge_all()
    return found


def cli_checkpoint(settings, db, **kwargs) -> audit.AuditCheckpoint:
    result = run_cli(settings, "audit", "checkpoint", **kwargs)
    assert result.exit_code == 0, result.output
    return checkpoints(db)[-1]


def test_checkpoint_records_seq_and_head_signed_with_the_key_file(settings, db):
    add_events(db, 3)
    head = rows(db)[-1]
    result = run_cli(settings, "audit", "checkpoint")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"checkpoint at seq 3, head {head['hash']}"

    key_file = settings.data_path / "audit.key"
    assert key_file.exists()
    (checkpoint,) = checkpoints(db)
    assert (checkpoint.seq, checkpoint.head_hash) == (3, head["hash"])
    key = key_file.read_text().strip().encode()
    message = f"3:{head['hash']}:{checkpoint.created_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
    assert hmac.compare_digest(
        checkpoint.signature, hmac.new(key, message.encode(), "sha256").hexdigest())
    # The key is not in the database: the row holds only the signature.
    assert key.decode() not in repr(rows(db)) + repr(checkpoint)
    # The checkpoint itself is recorded in the trail, after the head it anchors.
    event = rows(db)[-1]
    assert (event["seq"], event["action"], event["entity_id"]) == (
        4, "audit.checkpoint", str(checkpoint.id))
    assert run_cli(settings, "audit", "verify").exit_code == 0


def test_key_file_location_comes_from_the_setting(settings, db, tmp_path):
    key_file = tmp_path / "elsewhere" / "anchor.key"
    add_events(db, 1)
    cli_checkpoint(settings, db, key_file=key_file)
    assert key_file.exists() and not (settings.data_path / "audit.key").exists()
    assert run_cli(settings, "audit", "verify", key_file=key_file).exit_code == 0


def test_consistent_rewrite_of_the_whole_chain_fails_at_the_first_checkpoint(settings, db):
    add_events(db, 3)
    first = cli_checkpoint(settings, db)  # anchors seq 3; its own event is seq 4
    add_events(db, 3)
    second = cli_checkpoint(settings, db)  # anchors seq 7
    assert (first.seq, second.seq) == (3, 7)

    rewrite_chain(db, 2, '{"i":999}')
    tampered = rows(db)  # every link and hash is consistent again
    for prev, event in zip(tampered, tampered[1:], strict=False):
        assert event["prev_hash"] == prev["hash"]
    assert tampered[1]["after"] == '{"i":999}'

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "FAIL at seq 3:" in result.stdout and "rewritten" in result.stdout


def test_the_same_rewrite_without_a_checkpoint_would_go_unnoticed(settings, db):
    """Why checkpoints exist: shows the rewrite used above really is self-consistent."""
    add_events(db, 5)
    rewrite_chain(db, 2, '{"i":999}')
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK 5 events")


def test_truncating_the_tail_past_a_checkpoint_fails_at_the_checkpoint(settings, db):
    add_events(db, 3)
    cli_checkpoint(settings, db)  # anchors seq 3, event 4 records it
    delete_event(db, 3, 4)
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "FAIL at seq 3:" in result.stdout


def _insert_checkpoint(db, seq: int, head_hash: str, key: bytes, at=None) -> None:
    created_at = at or utcnow()
    with db.transaction() as session:
        session.add(audit.AuditCheckpoint(
            seq=seq, head_hash=head_hash, created_at=created_at, created_by="mallory",
            signature=audit.checkpoint_signature(key, seq, head_hash, created_at)))


def test_a_forged_checkpoint_fails(settings, db):
    add_events(db, 4)
    cli_checkpoint(settings, db)
    rewrite_chain(db, 1, '{"i":-1}')
    head = rows(db)[2]
    # A rewriter who cannot read the key signs a matching checkpoint with a key of their own.
    _insert_checkpoint(db, 3, head["hash"], b"not-the-real-key")
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "FAIL at seq 3:" in result.stdout


def test_a_checkpoint_with_a_wrong_hmac_fails_even_on_an_intact_chain(settings, db):
    add_events(db, 5)
    cli_checkpoint(settings, db)
    _insert_checkpoint(db, 2, rows(db)[1]["hash"], b"wrong key")
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "FAIL at seq 2:" in result.stdout and "invalid signature" in result.stdout


def test_verify_without_the_key_file_still_checks_the_chain(settings, db):
    add_events(db, 4)
    cli_checkpoint(settings, db)
    (settings.data_path / "audit.key").unlink()

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK 5 events")
    assert "warning" in result.stderr and "not checked" in " ".join(result.stderr.split())

    tamper_after(db, 2, "{}")
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1 and "FAIL at seq 2:" in result.stdout
    assert "warning" in result.stderr


def test_verify_without_the_key_file_still_compares_checkpoint_hashes(settings, db):
    add_events(db, 4)
    cli_checkpoint(settings, db)
    (settings.data_path / "audit.key").unlink()
    rewrite_chain(db, 1, '{"i":-1}')
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1 and "FAIL at seq 4:" in result.stdout


# ---------------------------------------------------------------- the daily job


def test_daily_job_creates_the_first_checkpoint_then_waits_a_day(settings, db):
    add_events(db, 2)
    made = jobs.checkpoint_if_due(db, settings)
    assert made is not None and (made.seq, made.head_hash) == (2, rows(db)[1]["hash"])
    assert settings.resolved_audit_key_file.exists()
    key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
    assert made.signature == audit.checkpoint_signature(key, made.seq, made.head_hash,
                                                        made.created_at)

    add_events(db, 1)
    assert jobs.checkpoint_if_due(db, settings) is None
    assert len(checkpoints(db)) == 1
    with db.reading() as session:
        assert audit.verify_chain(session, key).ok


@pytest.mark.parametrize("age, expect_new", [(timedelta(days=1, minutes=1), True),
                                             (timedelta(hours=23), False)])
def test_daily_job_checks_the_age_of_the_last_checkpoint(settings, db, age, expect_new):
    add_events(db, 2)
    key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
    _insert_checkpoint(db, 2, rows(db)[1]["hash"], key, at=utcnow() - age)
    made = jobs.checkpoint_if_due(db, settings)
    assert (made is not None) is expect_new
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(audit.AuditCheckpoint)) == (
            2 if expect_new else 1)
        assert audit.verify_chain(session, key).ok


# ---------------------------------------------------------------- anchors outside the database


def test_a_checkpoint_is_also_written_to_the_anchor_file_beside_the_key(settings, db):
    add_events(db, 2)
    checkpoint = cli_checkpoint(settings, db)
    anchor_file = settings.data_path / "audit.anchors"
    assert anchor_file == settings.resolved_audit_anchor_file
    (anchor,) = audit.read_anchors(anchor_file)
    assert (anchor.seq, anchor.head_hash, anchor.signature) == (
        checkpoint.seq, checkpoint.head_hash, checkpoint.signature)


def test_deleting_the_checkpoint_rows_does_not_hide_a_rewritten_chain(settings, db):
    """With the triggers dropped, an intruder rewrites the chain and deletes the checkpoints
    from the database; the anchors kept beside the key still catch it."""
    from tests.core.chain_tools import CHECKPOINTS, unprotected

    add_events(db, 3)
    cli_checkpoint(settings, db)  # anchors seq 3
    add_events(db, 2)
    rewrite_chain(db, 2, '{"i":999}')
    with unprotected(db, "audit_checkpoint") as conn:
        conn.execute(CHECKPOINTS.delete())
    assert checkpoints(db) == []

    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
    assert "FAIL at seq 3:" in result.stdout


def test_a_rolled_back_checkpoint_leaves_no_anchor(settings, db):
    add_events(db, 2)
    key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
    with pytest.raises(RuntimeError), db.transaction() as session:
        audit.create_checkpoint(session, None, key, settings.resolved_audit_anchor_file)
        raise RuntimeError("the transaction fails after the checkpoint")
    assert audit.read_anchors(settings.resolved_audit_anchor_file) == []
    assert checkpoints(db) == []


def test_a_damaged_anchor_line_fails_verification(settings, db):
    add_events(db, 2)
    cli_checkpoint(settings, db)
    with settings.resolved_audit_anchor_file.open("a") as handle:
        handle.write("garbage\n")
    result = run_cli(settings, "audit", "verify")
    assert result.exit_code == 1, result.output
