"""The lab's CMA accreditation scope (资质认定能力范围) and its signatories' scopes (授权签字人);
DOMAIN.md §1 table, §2 rule 2, §5.

The CMA scope is data: certificates (12-digit number, validity) holding items (parameter ×
method code with year × matrix). Items are append-only; a wrong item is corrected by recording
the certificate again (same number) with the right items: the newer record of a number replaces
the older ones. The scope in force on a day is the union of the items of the certificate records
valid that day and not replaced.

A signatory scope names what a person may approve (签发): a matrix ("" any), a method (None any)
and a parameter ("" every parameter of the method or matrix), from `valid_from` to `valid_to`
(lab-local dates, both included). The technical manager proposes it; it is in force only once a
different person (the quality manager, neither the proposer nor the signatory) approves it; it is
ended with a reason from an end date on (`ended_at` is the start of that lab day), never deleted.

Both lookups take all the items of a report at once and answer in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.analysis.methods import clean_code
from app.analysis.models import Method
from app.core.labtime import lab_calendar
from app.people.models import User
from app.reports import scope_errors as errors
from app.reports.models import AccreditationCertificate, AccreditationItem, SignatoryScope

MATRIX_WORDS = {"water": ("水", "water"), "air": ("空气", "air"), "soil": ("土壤", "soil"),
                "other": ("其他", "other")}


def matrix_words(matrix: str) -> tuple[str, str]:
    """(zh, en) of a matrix as messages name it."""
    return MATRIX_WORDS.get(matrix, (matrix or "—", matrix or "—"))


def item_words(parameter: str, method_code: str, matrix: str) -> tuple[str, str]:
    """An item as messages name it: NH3-N（HJ 535-2009，水） / NH3-N (HJ 535-2009, water)."""
    zh, en = matrix_words(matrix)
    return f"{parameter}（{method_code}，{zh}）", f"{parameter} ({method_code}, {en})"


# ---------------------------------------------------------------- CMA scope in force


_CertificateAlias = AccreditationCertificate.__table__.alias("cert")


def certificates_in_force(session: Session, on: date) -> list[AccreditationCertificate]:
    """Every certificate record in force on `on`, the latest valid first."""
    ids = select(_CertificateAlias.c.id).where(*_in_force_clause_table(on))
    return list(session.scalars(select(AccreditationCertificate).where(AccreditationCertificate.id.in_(ids))
                                .order_by(AccreditationCertificate.valid_to.desc(),
                                          AccreditationCertificate.id.desc())))


def certificate_in_force(session: Session, on: date) -> AccreditationCertificate | None:
    """The certificate printed with the CMA mark on a report issued on `on`: of those in force,
    the one valid longest (then the latest recorded); None when the lab holds none that day."""
    found = certificates_in_force(session, on)
    return found[0] if found else None


def _in_force_clause_table(on: date) -> tuple:
    cert = _CertificateAlias.c
    other = AccreditationCertificate.__table__.alias("newer").c
    newer = select(other.id).where(other.certificate_no == cert.certificate_no, other.id > cert.id).exists()
    return (cert.valid_from <= on, cert.valid_to >= on, ~newer)


def cma_coverage(session: Session, items: Iterable[tuple[str, str, str]], on: date) -> dict[tuple[str, str, str], bool]:
    """For each (parameter, method_code, matrix): True when a certificate in force on `on`
    holds it. Method codes compare as the lab writes them (HJ 535-2009, any dash or case);
    one query whatever the number of items."""
    wanted = list(dict.fromkeys(items))
    if not wanted:
        return {}
    keys = {item: (item[0].strip(), clean_code(item[1]), item[2].strip()) for item in wanted}
    in_force = select(_CertificateAlias.c.id).where(*_in_force_clause_table(on))
    held = {tuple(row) for row in session.execute(
        select(AccreditationItem.parameter, AccreditationItem.method_code, AccreditationItem.matrix).where(
            AccreditationItem.certificate_id.in_(in_force),
            AccreditationItem.parameter.in_({k[0] for k in keys.values()}),
            AccreditationItem.method_code.in_({k[1] for k in keys.values()})))}
    return {item: key in held for item, key in keys.items()}


# ---------------------------------------------------------------- signatory scope gate


def scope_covers(scope: SignatoryScope, parameter: str, method_id: int, matrix: str) -> bool:
    return ((not scope.matrix or scope.matrix == matrix)
            and (scope.method_id is None or scope.method_id == method_id)
            and (not scope.parameter or scope.parameter == parameter))


def scopes_valid_on(session: Session, user_id: int, on: date) -> list[SignatoryScope]:
    """The user's approved scopes covering the lab day `on`: started, not expired, and not ended
    on or before that day."""
    ended_from = lab_calendar(session).start_of(on)
    return list(session.scalars(select(SignatoryScope).where(
        SignatoryScope.user_id == user_id, SignatoryScope.approved_at.is_not(None),
        SignatoryScope.valid_from <= on,
        or_(SignatoryScope.valid_to.is_(None), SignatoryScope.valid_to >= on),
        or_(SignatoryScope.ended_at.is_(None), SignatoryScope.ended_at > ended_from))
        .order_by(SignatoryScope.id)))


def assert_signatory_in_scope(session: Session, user: User, items: Iterable[tuple[str, int, str]], on: date) -> None:
    """DOMAIN.md §2 rule 2 on the signing day: SignatoryOutOfScope, naming every item no
    approved, unended scope of `user` valid on `on` covers. Two queries at most."""
    wanted = list(dict.fromkeys((p.strip(), m, x.strip()) for p, m, x in items))
    if not wanted:
        return
    scopes = scopes_valid_on(session, user.id, on)
    outside = [item for item in wanted if not any(scope_covers(s, *item) for s in scopes)]
    if not outside:
        return
    codes = {method_id: code for method_id, code in session.execute(
        select(Method.id, Method.code).where(Method.id.in_({m for _, m, _ in outside})))}
    named = [item_words(p, codes.get(m, f"#{m}"), x) for p, m, x in outside]
    raise errors.SignatoryOutOfScope(
        person=getattr(user, "printed_name", None) or user.username, day=on.isoformat(),
        items_zh="、".join(zh for zh, _ in named), items_en="; ".join(en for _, en in named),
        items=[{"parameter": p, "method_id": m, "matrix": x} for p, m, x in outside])
