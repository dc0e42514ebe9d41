"""The quality manager's signed review of the trail, as shown on /oversight/audit/integrity:
printed name, time and meaning, and "broken" once the chain is rewritten under it."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.core import audit
from app.core.i18n import gettext, use_language
from app.core.signatures import ElectronicSignature
from app.oversight.models import AuditReview
from tests.conftest import PASSWORD, login
from tests.core.chain_tools import add_events, cheap_password_hashing, rewrite_chain  # noqa: F401


def signature_html(page: str) -> str:
    """The rendered signature macro (from its outer span to the end of its badge)."""
    match = re.search(r'<span class="signature (?:intact|broken)">.*?</(?:mark|span)>\s*</span>',
                      page, re.S)
    assert match, page
    return match.group(0)


def t(message: str) -> str:
    with use_language("zh_CN"):
        return gettext(message)


def review(client, csrf: str, password: str = PASSWORD):
    return client.post("/oversight/audit/review",
                       data={"password": password, "note": "月度审核 monthly", "csrf_token": csrf})


def test_signed_review_shows_name_time_meaning_then_broken_after_a_rewrite(client, db, users,
                                                                          settings):
    add_events(db, 3)
    csrf = login(client, "quality-manager")
    response = review(client, csrf)
    assert response.status_code == 303, response.text

    with db.reading() as session:
        (stored,) = session.scalars(select(AuditReview)).all()
        signature = session.get(ElectronicSignature, stored.signature_id)
        session.expunge_all()
    assert stored.chain_ok and signature.meaning == "reviewed"
    assert signature.signer_id == users["quality_manager"].id
    assert signature.printed_name == users["quality_manager"].printed_name

    page = client.get("/oversight/audit/integrity")
    assert page.status_code == 200
    shown = signature_html(page.text)
    local = signature.signed_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M:%S")
    assert 'class="signature intact"' in shown
    assert signature.printed_name in shown
    assert t("reviewed") in shown
    assert f'<time datetime="{signature.signed_at.isoformat()}">{local}</time>' in shown
    assert t("broken: content changed since signing") not in page.text
    assert "月度审核 monthly" in page.text

    rewrite_chain(db, 1, '{"rewritten":true}')  # consistent: the chain alone still verifies

    page = client.get("/oversight/audit/integrity")
    assert page.status_code == 200
    shown = signature_html(page.text)
    assert 'class="signature broken"' in shown
    assert t("broken: content changed since signing") in shown
    assert signature.printed_name in shown and local in shown


def test_a_wrong_password_signs_no_review_but_is_recorded(client, db, users):
    csrf = login(client, "quality-manager")
    response = review(client, csrf, "not-the-password")
    assert response.status_code == 403
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(AuditReview)) == 0
        assert session.scalar(select(func.count()).select_from(ElectronicSignature)) == 0
        failed = session.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "signature.failed")).all()
        assert [e.actor_id for e in failed] == [users["quality_manager"].id]
        assert audit.verify_chain(session, None).ok
    assert 'class="signature' not in client.get("/oversight/audit/integrity").text


def test_only_holders_of_the_review_permission_may_sign_a_review(client, db, users):
    csrf = login(client, "analyst")
    response = review(client, csrf)
    assert response.status_code == 403
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(AuditReview)) == 0
