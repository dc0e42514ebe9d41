"""Electronic signatures (DESIGN.md rule 6): the password again, the hash of what was signed,
a refused signature leaves its audit record, and a changed content shows as broken."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core import audit
from app.core.canonical import sha256_hex
from app.core.errors import InvalidInput
from app.core.signatures import ElectronicSignature, SignatureMeaning, check, sign, signatures_for
from app.people import service as people
from app.people.errors import AccountLocked, WrongSigningPassword
from app.people.models import User
from tests.conftest import PASSWORD, make_user
from tests.core.chain_tools import cheap_password_hashing  # noqa: F401

CONTENT = {"sample": "S-2024-001", "result": Decimal("0.0150"), "unit": "mg/L"}


@pytest.fixture
def analyst(db) -> User:
    return make_user(db, "wang.wei", "analyst", name_zh="王伟", name_en="Wang Wei")


def _sign(db, user_id: int, password: str, meaning="analysed", content=CONTENT):
    with db.transaction() as session:
        return sign(session, session.get(User, user_id), password, meaning, "result", 7, content)


def _count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def _events(db, action: str) -> list[audit.AuditEvent]:
    with db.reading() as session:
        found = list(session.scalars(
            select(audit.AuditEvent).where(audit.AuditEvent.action == action)
            .order_by(audit.AuditEvent.seq)))
        session.expunge_all()
    return found


def test_sign_stores_signer_name_meaning_time_and_content_hash(db, analyst):
    signature = _sign(db, analyst.id, PASSWORD)
    with db.reading() as session:
        (stored,) = signatures_for(session, "result", 7)
        assert signatures_for(session, "result", 8) == []
        session.expunge_all()
    assert stored.id == signature.id
    assert stored.signer_id == analyst.id
    assert stored.printed_name == "王伟 (Wang Wei)"
    assert stored.meaning == "analysed"
    assert stored.signed_at.tzinfo == UTC
    assert (stored.entity_type, stored.entity_id) == ("result", "7")
    assert stored.content_hash == sha256_hex(
        '{"result":"0.0150","sample":"S-2024-001","unit":"mg/L"}')

    (event,) = _events(db, "signature.analysed")
    assert (event.actor_id, event.entity_type, event.entity_id) == (analyst.id, "result", "7")
    assert event.after_data == {"signature_id": stored.id, "content_hash": stored.content_hash,
                                "printed_name": "王伟 (Wang Wei)"}


def test_check_is_intact_for_the_same_content_and_broken_when_it_changed(db, analyst):
    signature = _sign(db, analyst.id, PASSWORD)
    same = dict(reversed(list(CONTENT.items())))  # key order does not matter
    assert check(signature, same).intact and not check(signature, same).broken
    changed = {**CONTENT, "result": Decimal("0.015")}  # same number, other precision
    assert check(signature, changed).broken and not check(signature, changed).intact


def test_the_printed_name_is_kept_as_it_was_at_signing(db, analyst):
    admin = make_user(db, "admin1", "admin")
    _sign(db, analyst.id, PASSWORD)
    with db.transaction() as session:
        people.update_user_names(session, session.get(User, admin.id), analyst.id, "王伟伟",
                                 "Wang Weiwei")
    with db.reading() as session:
        assert session.get(User, analyst.id).printed_name == "王伟伟 (Wang Weiwei)"
        assert signatures_for(session, "result", 7)[0].printed_name == "王伟 (Wang Wei)"


def test_wrong_password_is_refused_nothing_signed_and_the_refusal_audited(db, analyst):
    with pytest.raises(WrongSigningPassword) as refused:
        _sign(db, analyst.id, "not-my-password")
    assert refused.value.code == "wrong_signing_password"
    assert _count(db, ElectronicSignature) == 0
    assert _events(db, "signature.analysed") == []
    (failed,) = _events(db, "signature.failed")  # committed although the act was refused
    assert (failed.actor_id, failed.entity_type, failed.entity_id) == (
        analyst.id, "user", str(analyst.id))
    assert failed.after_data["purpose"] == "signature"
    assert failed.after_data["failed_logins"] == 1
    with db.reading() as session:
        assert session.get(User, analyst.id).failed_logins == 1
        assert audit.verify_chain(session, None).ok


def test_a_refused_signature_undoes_the_act_it_was_to_sign(db, analyst):
    with db.reading() as session:
        head_before = audit.head(session)[0]
    with pytest.raises(WrongSigningPassword), db.transaction() as session:
        audit.append(session, None, "result.entered", "result", 7, None, CONTENT)
        sign(session, session.get(User, analyst.id), "guess", "analysed", "result", 7, CONTENT)
    assert _events(db, "result.entered") == []
    (failed,) = _events(db, "signature.failed")
    assert failed.seq == head_before + 1
    with db.reading() as session:
        assert audit.verify_chain(session, None).ok


def test_five_wrong_signing_passwords_lock_the_account(db, analyst):
    for _ in range(5):
        with pytest.raises(WrongSigningPassword):
            _sign(db, analyst.id, "guess")
    assert len(_events(db, "signature.failed")) == 5
    (locked,) = _events(db, "user.locked")
    assert locked.entity_id == str(analyst.id)

    with pytest.raises(AccountLocked) as refusal:  # even the right password now
        _sign(db, analyst.id, PASSWORD)
    assert refusal.value.code == "account_locked"
    with pytest.raises(AccountLocked), db.transaction() as session:  # and signing in
        people.authenticate(session, "wang.wei", PASSWORD)
    assert _count(db, ElectronicSignature) == 0
    assert len(_events(db, "signature.refused")) == 1


def test_a_right_password_resets_the_failure_count(db, analyst):
    for _ in range(4):
        with pytest.raises(WrongSigningPassword):
            _sign(db, analyst.id, "guess")
    _sign(db, analyst.id, PASSWORD)
    with pytest.raises(WrongSigningPassword):
        _sign(db, analyst.id, "guess")
    assert _events(db, "user.locked") == []
    with db.reading() as session:
        assert session.get(User, analyst.id).locked_until is None


def test_an_unknown_meaning_is_refused(db, analyst):
    with pytest.raises(InvalidInput) as refusal:
        _sign(db, analyst.id, PASSWORD, meaning="rubber-stamped")
    assert refusal.value.code == "invalid_input"
    assert {"sampled", "analysed", "checked", "reviewed", "approved", "issued"} <= {
        m.value for m in SignatureMeaning}
    assert _count(db, ElectronicSignature) == 0
    assert _events(db, "signature.failed") == []


def test_signature_and_its_audit_event_land_together(db, analyst):
    with pytest.raises(RuntimeError), db.transaction() as session:
        sign(session, session.get(User, analyst.id), PASSWORD, "checked", "result", 7, CONTENT)
        raise RuntimeError("the surrounding change failed")
    assert _count(db, ElectronicSignature) == 0
    assert _events(db, "signature.checked") == []
