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

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.analysis.methods import CODE_RE, MATRICES, clean_code
from app.analysis.models import Method, MethodParameter, MethodVersion
from app.core import audit
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.labtime import lab_calendar
from app.core.permissions import Permission, ensure, has_permission, roles_at
from app.core.roles import Role
from app.core.web import Page
from app.people.models import RoleGrant, User
from app.reports import scope_errors as errors
from app.reports.models import AccreditationCertificate, AccreditationItem, SignatoryScope
from app.samples import lab_input

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
    ids = select(_CertificateAlias.c.id).where(*_in_force_clause(on))
    return list(session.scalars(select(AccreditationCertificate).where(AccreditationCertificate.id.in_(ids))
                                .order_by(AccreditationCertificate.valid_to.desc(),
                                          AccreditationCertificate.id.desc())))


def certificate_in_force(session: Session, on: date) -> AccreditationCertificate | None:
    """The certificate printed with the CMA mark on a report issued on `on`: of those in force,
    the one valid longest (then the latest recorded); None when the lab holds none that day."""
    found = certificates_in_force(session, on)
    return found[0] if found else None


def _in_force_clause(on: date) -> tuple:
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
    in_force = select(_CertificateAlias.c.id).where(*_in_force_clause(on))
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
    """The user's scopes covering the lab day `on`: approved by the end of that day, started,
    not expired, and not ended on or before that day."""
    calendar = lab_calendar(session)
    ended_from, day_after = calendar.start_of(on), calendar.start_of(on + timedelta(days=1))
    return list(session.scalars(select(SignatoryScope).where(
        SignatoryScope.user_id == user_id, SignatoryScope.approved_at.is_not(None),
        SignatoryScope.approved_at < day_after,
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


# ---------------------------------------------------------------- cleaning input

CERTIFICATE_NO_RE = re.compile(r"^\d{12}$")
FORMULA_START = ("=", "+", "-", "@")  # what a spreadsheet would evaluate (CSV injection)
MAX_CSV_LINES = 5000
MAX_CSV_BYTES = 2 * 1024 * 1024
MATRIX_ALIASES = {"水": "water", "水质": "water", "空气": "air", "气": "air", "土壤": "soil", "土": "soil",
                  "其他": "other", "其它": "other"}
CSV_COLUMNS = {"parameter": ("parameter", "检测项目", "项目", "参数"),
               "method_code": ("method_code", "method", "方法", "方法编号", "方法标准", "标准"),
               "matrix": ("matrix", "介质", "类别")}


def _day(value: Any, field_zh: str, field_en: str) -> date:
    """A lab-local date from a date or 'YYYY-MM-DD'."""
    if isinstance(value, datetime):
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=str(value)[:40])
    if isinstance(value, date):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise lab_input.FieldRequired(field_zh=field_zh, field_en=field_en)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=text[:40]) from None
    if not 2000 <= day.year <= 2999:
        raise lab_input.InvalidActTime(field_zh=field_zh, field_en=field_en, value=text[:40])
    return day


def _no_formula(value: str, field_zh: str, field_en: str) -> str:
    if value.startswith(FORMULA_START):
        raise errors.FormulaCell(field_zh=field_zh, field_en=field_en, value=value[:40])
    return value


def clean_matrix(value: Any, *, allow_any: bool = False) -> str:
    """water / air / soil / other (also 水, 空气, 土壤, 其他 and any case); "" when `allow_any`."""
    text = (value if isinstance(value, str) else "").strip()
    if not text and allow_any:
        return ""
    matrix = MATRIX_ALIASES.get(text, text.lower())
    if matrix not in MATRICES:
        raise errors.MatrixInvalid(matrix=text[:20] or "—")
    return matrix


def clean_item(parameter: Any, method_code: Any, matrix: Any) -> tuple[str, str, str]:
    """One scope line as stored: (parameter, method code with its year, matrix)."""
    name = _no_formula(lab_input.text(parameter, "检测项目", "The parameter", 60, required=True),
                       "检测项目", "The parameter")
    raw = _no_formula(lab_input.text(method_code, "方法", "The method", 60, required=True), "方法", "The method")
    code = clean_code(raw)
    if not CODE_RE.match(code):
        raise errors.MethodCodeYearMissing(method=raw[:60])
    return name, code, clean_matrix(_no_formula((matrix or "").strip() if isinstance(matrix, str) else "",
                                                "介质", "The matrix"))


def clean_certificate_no(value: Any) -> str:
    number = re.sub(r"\s+", "", value if isinstance(value, str) else "")
    if not number:
        raise lab_input.FieldRequired(field_zh="证书编号", field_en="The certificate number")
    if not CERTIFICATE_NO_RE.match(number):
        raise errors.CertificateNumberInvalid(certificate_no=number[:30])
    return number


# ---------------------------------------------------------------- CMA certificate and items


def _certificate_record(cert: AccreditationCertificate) -> dict[str, Any]:
    return {"certificate_no": cert.certificate_no, "issued_by": cert.issued_by, "valid_from": cert.valid_from,
            "valid_to": cert.valid_to, "note": cert.note}


def get_certificate(session: Session, certificate_id: int) -> AccreditationCertificate:
    row = session.get(AccreditationCertificate, certificate_id)
    if row is None:
        raise errors.CertificateNotFound(certificate=f"#{certificate_id}")
    return row


def latest_record_of(session: Session, certificate_no: str) -> AccreditationCertificate | None:
    """The newest record of a certificate number: the one that counts."""
    return session.scalars(select(AccreditationCertificate).where(
        AccreditationCertificate.certificate_no == certificate_no)
        .order_by(AccreditationCertificate.id.desc()).limit(1)).first()


def record_certificate(session: Session, actor: User, certificate_no: Any, issued_by: Any, valid_from: Any,
                       valid_to: Any, note: Any = "", *, replaces: int | None = None) -> AccreditationCertificate:
    """Record the lab's CMA certificate (technical manager). A number already recorded is
    recorded again only as a correction that names the record it replaces (`replaces`, the
    latest of that number): the new record then counts instead of it."""
    ensure(session, actor, Permission.SCOPES_MANAGE)
    number = clean_certificate_no(certificate_no)
    issuer = lab_input.text(issued_by, "发证机关", "The issuing authority", 200, required=True)
    start = _day(valid_from, "有效期起", "The start of validity")
    end = _day(valid_to, "有效期至", "The end of validity")
    if end <= start:
        raise errors.CertificateDatesInvalid(valid_from=start.isoformat(), valid_to=end.isoformat())
    remark = lab_input.text(note, "备注", "The note", 500)
    if replaces is not None:
        _lock(session, replaces)
    latest = latest_record_of(session, number)
    if latest is not None and replaces != latest.id:
        raise errors.CertificateAlreadyRecorded(certificate_no=number, record=latest.id)
    if latest is None and replaces is not None:
        raise errors.CertificateNotFound(certificate=f"#{replaces}")
    row = AccreditationCertificate(certificate_no=number, issued_by=issuer, valid_from=start, valid_to=end,
                                   note=remark, recorded_at=utcnow(), recorded_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "reports.cma_certificate_recorded", "accreditation_certificate", row.id, None,
                 {**_certificate_record(row), "replaces": latest.id if latest else None})
    return row


def _lock(session: Session, certificate_id: int) -> None:
    """Serialise acts on one certificate record (PostgreSQL row lock; SQLite writes are serial):
    two imports cannot both pass the duplicate check, two corrections cannot both replace it."""
    session.execute(select(AccreditationCertificate.id).where(AccreditationCertificate.id == certificate_id)
                    .with_for_update())


def _assert_current(session: Session, cert: AccreditationCertificate) -> None:
    _lock(session, cert.id)
    latest = latest_record_of(session, cert.certificate_no)
    if latest is not None and latest.id != cert.id:
        raise errors.CertificateReplaced(certificate_no=cert.certificate_no, record=cert.id, replacement=latest.id)


def add_item(session: Session, actor: User, certificate: AccreditationCertificate, parameter: Any,
             method_code: Any, matrix: Any) -> AccreditationItem:
    """Add one line to the certificate's scope. Lines are never changed or removed: a wrong
    line is corrected by recording the certificate again (`replace_certificate`)."""
    ensure(session, actor, Permission.SCOPES_MANAGE)
    _assert_current(session, certificate)
    name, code, where = clean_item(parameter, method_code, matrix)
    held = session.scalar(select(AccreditationItem.id).where(
        AccreditationItem.certificate_id == certificate.id, AccreditationItem.parameter == name,
        AccreditationItem.method_code == code, AccreditationItem.matrix == where))
    if held is not None:
        zh, en = item_words(name, code, where)
        raise errors.ItemAlreadyOnCertificate(certificate_no=certificate.certificate_no, item_zh=zh, item_en=en)
    row = AccreditationItem(certificate_id=certificate.id, parameter=name, method_code=code, matrix=where,
                            recorded_at=utcnow(), recorded_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "reports.cma_item_added", "accreditation_item", row.id, None,
                 {"certificate_id": certificate.id, "certificate_no": certificate.certificate_no,
                  "parameter": name, "method_code": code, "matrix": where})
    return row


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise errors.CsvEncodingUnknown()


def _header(cells: list[str]) -> dict[str, int]:
    names = [c.strip().lstrip("\ufeff").lower() for c in cells]
    found = {column: next((i for i, n in enumerate(names) if n in aliases), -1)
             for column, aliases in CSV_COLUMNS.items()}
    missing = [column for column, index in found.items() if index < 0]
    if missing:
        raise errors.CsvHeaderMissing(missing=", ".join(missing))
    return found


def parse_items_csv(data: bytes) -> list[tuple[int, tuple[str, str, str]]]:
    """The lines of a scope CSV as (line number, item); CsvRefused naming every bad line
    (unreadable, a bad code or year, a formula, a duplicate) when any is bad."""
    if len(data) > MAX_CSV_BYTES:
        raise errors.CsvTooLarge(limit_kb=MAX_CSV_BYTES // 1024)
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    problems: list[tuple[int, DomainError]] = []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise errors.CsvRefused([(reader.line_num, errors.CsvUnreadable(detail=str(error)[:100]))]) from None
    if not rows:
        raise errors.CsvEmpty()
    columns = _header(rows[0][1])
    lines = rows[1:]
    if not lines:
        raise errors.CsvEmpty()
    if len(lines) > MAX_CSV_LINES:
        raise errors.CsvTooLong(limit=MAX_CSV_LINES, lines=len(lines))
    width = max(columns.values()) + 1
    seen: dict[tuple[str, str, str], int] = {}
    items: list[tuple[int, tuple[str, str, str]]] = []
    for number, cells in lines:
        if len(cells) < width:
            problems.append((number, errors.CsvLineMalformed(expected=width, found=len(cells))))
            continue
        try:
            item = clean_item(cells[columns["parameter"]], cells[columns["method_code"]], cells[columns["matrix"]])
        except DomainError as error:
            problems.append((number, error))
            continue
        if item in seen:
            zh, en = item_words(*item)
            problems.append((number, errors.CsvDuplicateLine(item_zh=zh, item_en=en, first=seen[item])))
            continue
        seen[item] = number
        items.append((number, item))
    if problems:
        raise errors.CsvRefused(problems)
    return items


def import_items_csv(session: Session, actor: User, certificate: AccreditationCertificate, data: bytes,
                     filename: str = "") -> list[AccreditationItem]:
    """Add the lines of a CSV (columns parameter, method_code, matrix; header required; UTF-8,
    UTF-8 with BOM or GBK; at most 5,000 lines) to the certificate, all or nothing: every bad
    line is reported with its number, including lines the certificate already holds."""
    ensure(session, actor, Permission.SCOPES_MANAGE)
    _assert_current(session, certificate)
    items = parse_items_csv(data)
    held = {tuple(row) for row in session.execute(
        select(AccreditationItem.parameter, AccreditationItem.method_code, AccreditationItem.matrix)
        .where(AccreditationItem.certificate_id == certificate.id))}
    problems: list[tuple[int, DomainError]] = []
    for number, item in items:
        if item in held:
            zh, en = item_words(*item)
            problems.append((number, errors.ItemAlreadyOnCertificate(
                certificate_no=certificate.certificate_no, item_zh=zh, item_en=en)))
    if problems:
        raise errors.CsvRefused(problems)
    now = utcnow()
    rows = [AccreditationItem(certificate_id=certificate.id, parameter=p, method_code=m, matrix=x,
                              recorded_at=now, recorded_by_id=actor.id) for _, (p, m, x) in items]
    session.add_all(rows)
    session.flush()
    audit.append(session, actor, "reports.cma_items_imported", "accreditation_certificate", certificate.id, None,
                 {"certificate_no": certificate.certificate_no, "count": len(rows),
                  "filename": lab_input.text(filename, "文件名", "The file name", 200)[:200],
                  "sha256": hashlib.sha256(data).hexdigest(), "items": [list(item) for _, item in items]})
    return rows


def replace_certificate(session: Session, actor: User, old: AccreditationCertificate, issued_by: Any,
                        valid_from: Any, valid_to: Any, data: bytes, note: Any = "",
                        filename: str = "") -> AccreditationCertificate:
    """Correct a certificate's scope: record the same number again with the full, corrected
    list of items (a CSV) in one act, so the scope never goes without its items in between."""
    row = record_certificate(session, actor, old.certificate_no, issued_by, valid_from, valid_to, note,
                             replaces=old.id)
    import_items_csv(session, actor, row, data, filename)
    return row


def items_csv(session: Session, certificate: AccreditationCertificate) -> str:
    """The certificate's items as a CSV the import reads back (UTF-8), the start of a correction."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["parameter", "method_code", "matrix"])
    for parameter, code, matrix in session.execute(
            select(AccreditationItem.parameter, AccreditationItem.method_code, AccreditationItem.matrix)
            .where(AccreditationItem.certificate_id == certificate.id)
            .order_by(AccreditationItem.matrix, AccreditationItem.method_code, AccreditationItem.parameter)):
        writer.writerow([parameter, code, matrix])
    return out.getvalue()


# ---------------------------------------------------------------- reading the CMA scope

CERTIFICATE_STATES = ("in_force", "not_yet_valid", "expired", "replaced")


@dataclass
class CertificateRow:
    certificate: AccreditationCertificate
    state: str
    items: int
    replaced_by: int | None


def certificate_state(cert: AccreditationCertificate, today: date, replaced_by: int | None) -> str:
    if replaced_by is not None:
        return "replaced"
    if cert.valid_from > today:
        return "not_yet_valid"
    if cert.valid_to < today:
        return "expired"
    return "in_force"


def list_certificates(session: Session, *, page: int = 1, size: int = 20) -> Page[CertificateRow]:
    """Certificate records, newest first, with their state and number of items: two queries."""
    today = lab_calendar(session).today()
    newer = AccreditationCertificate.__table__.alias("newer")
    replaced_by = select(func.min(newer.c.id)).where(
        newer.c.certificate_no == AccreditationCertificate.certificate_no,
        newer.c.id > AccreditationCertificate.id).scalar_subquery()
    count = select(func.count(AccreditationItem.id)).where(
        AccreditationItem.certificate_id == AccreditationCertificate.id).scalar_subquery()
    total = session.scalar(select(func.count()).select_from(AccreditationCertificate)) or 0
    page = max(1, page)
    rows = session.execute(select(AccreditationCertificate, count, replaced_by)
                           .order_by(AccreditationCertificate.valid_from.desc(), AccreditationCertificate.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    return Page([CertificateRow(c, certificate_state(c, today, r), n, r) for c, n, r in rows], page, size, total)


@dataclass
class ItemRow:
    item: AccreditationItem
    certificate: AccreditationCertificate
    known: bool  # a registered method of that code and matrix measures the parameter


def registered_items(session: Session, method_codes: Iterable[str]) -> set[tuple[str, str, str]]:
    """(parameter, method code, matrix) the lab's registered methods measure, for these codes:
    reports name their lines so, and only such an item can ever match a report line."""
    codes = set(method_codes)
    if not codes:
        return set()
    return {tuple(row) for row in session.execute(
        select(MethodParameter.parameter, Method.code, Method.matrix).distinct()
        .join(MethodVersion, MethodVersion.method_id == Method.id)
        .join(MethodParameter, MethodParameter.method_version_id == MethodVersion.id)
        .where(Method.code.in_(codes)))}


def list_items(session: Session, *, certificate_id: int | None = None, parameter: str = "", method: str = "",
               matrix: str = "", in_force_on: date | None = None, page: int = 1,
               size: int = 25) -> Page[ItemRow]:
    """Scope lines filtered by certificate record, parameter, method code (a part of it) and
    matrix; `in_force_on` keeps the lines of the records in force that day. Three queries."""
    query = select(AccreditationItem, AccreditationCertificate).join(
        AccreditationCertificate, AccreditationCertificate.id == AccreditationItem.certificate_id)
    if certificate_id is not None:
        query = query.where(AccreditationItem.certificate_id == certificate_id)
    if in_force_on is not None:
        in_force = select(_CertificateAlias.c.id).where(*_in_force_clause(in_force_on))
        query = query.where(AccreditationItem.certificate_id.in_(in_force))
    name = re.sub(r"\s+", " ", parameter or "").strip()[:60]
    if name:
        query = query.where(func.upper(AccreditationItem.parameter).contains(name.upper(), autoescape=True))
    code = clean_code(method or "")[:60]
    if code:
        query = query.where(AccreditationItem.method_code.contains(code, autoescape=True))
    if matrix in MATRICES:
        query = query.where(AccreditationItem.matrix == matrix)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    rows = session.execute(query.order_by(AccreditationItem.matrix, AccreditationItem.method_code,
                                          AccreditationItem.parameter, AccreditationItem.id)
                           .limit(size).offset((page - 1) * size)).all()
    known = registered_items(session, {i.method_code for i, _ in rows})
    return Page([ItemRow(i, c, (i.parameter, i.method_code, i.matrix) in known) for i, c in rows], page, size,
                total)


# ---------------------------------------------------------------- signatory scopes

SCOPE_STATUSES = ("proposed", "in_force", "not_yet_valid", "expired", "ended")


def _scope_record(scope: SignatoryScope) -> dict[str, Any]:
    return {"user_id": scope.user_id, "matrix": scope.matrix, "method_id": scope.method_id,
            "parameter": scope.parameter, "valid_from": scope.valid_from, "valid_to": scope.valid_to,
            "basis": scope.basis}


def get_scope(session: Session, scope_id: int) -> SignatoryScope:
    row = session.get(SignatoryScope, scope_id)
    if row is None:
        raise errors.ScopeNotFound(scope=scope_id)
    return row


def _locked(session: Session, scope: SignatoryScope) -> SignatoryScope:
    return session.execute(select(SignatoryScope).where(SignatoryScope.id == scope.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def scope_status(scope: SignatoryScope, today: date, now: datetime) -> str:
    """proposed, in force, not yet valid, expired or ended, on the lab day `today`."""
    if scope.ended_at is not None and scope.ended_at <= now:
        return "ended"
    if scope.approved_at is None:
        return "proposed"
    if scope.valid_to is not None and scope.valid_to < today:
        return "expired"
    if scope.valid_from > today:
        return "not_yet_valid"
    return "in_force"


def _not_ended(now: datetime) -> Any:
    return or_(SignatoryScope.ended_at.is_(None), SignatoryScope.ended_at > now)


def propose_signatory_scope(session: Session, actor: User, user: User, *, matrix: Any = "",
                            method: Method | None = None, parameter: Any = "", valid_from: Any,
                            valid_to: Any = None, basis: Any) -> SignatoryScope:
    """Propose a scope for a person who holds the signatory role (at the later of now and the
    scope's start): it does not count until someone else approves it."""
    ensure(session, actor, Permission.SCOPES_MANAGE)
    calendar = lab_calendar(session)
    where = clean_matrix(matrix, allow_any=True)
    name = _no_formula(lab_input.text(parameter, "检测项目", "The parameter", 60), "检测项目", "The parameter")
    start = _day(valid_from, "起始日期", "The start of validity")
    end = None if valid_to is None or (isinstance(valid_to, str) and not valid_to.strip()) else \
        _day(valid_to, "截止日期", "The end of validity")
    if end is not None and end < start:
        raise errors.ScopeDatesInvalid(valid_from=start.isoformat(), valid_to=end.isoformat())
    reason = lab_input.text(basis, "依据", "The basis", 300, required=True)
    if method is not None:
        if where and where != method.matrix:
            mzh, men = matrix_words(method.matrix)
            zh, en = matrix_words(where)
            raise errors.ScopeMatrixMismatch(method=method.code, method_matrix_zh=mzh, method_matrix_en=men,
                                             matrix_zh=zh, matrix_en=en)
        if name and session.scalar(select(MethodParameter.id).join(
                MethodVersion, MethodVersion.id == MethodParameter.method_version_id).where(
                MethodVersion.method_id == method.id, MethodParameter.parameter == name).limit(1)) is None:
            raise errors.ScopeParameterUnknown(method=method.code, parameter=name)
    if not user.active:
        raise errors.PersonInactive(person=user.printed_name)
    now = utcnow()
    at = max(now, calendar.start_of(start))
    if Role.SIGNATORY not in roles_at(session, user.id, at):
        raise errors.PersonNotSignatory(person=user.printed_name, day=calendar.local_date(at).isoformat())
    method_id = method.id if method is not None else None
    clash = session.scalars(select(SignatoryScope).where(
        SignatoryScope.user_id == user.id, SignatoryScope.matrix == where,
        SignatoryScope.method_id.is_(None) if method_id is None else SignatoryScope.method_id == method_id,
        SignatoryScope.parameter == name, _not_ended(now),
        or_(SignatoryScope.valid_to.is_(None), SignatoryScope.valid_to >= start),
        *(() if end is None else (SignatoryScope.valid_from <= end,))).limit(1)).first()
    if clash is not None:
        state = scope_status(clash, calendar.today(), now)
        zh, en = STATUS_WORDS[state]
        raise errors.ScopeDuplicate(person=user.printed_name, scope=clash.id, state_zh=zh, state_en=en)
    row = SignatoryScope(user_id=user.id, matrix=where, method_id=method_id, parameter=name, valid_from=start,
                         valid_to=end, basis=reason, proposed_at=now, proposed_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.append(session, actor, "reports.signatory_scope_proposed", "signatory_scope", row.id, None,
                 {**_scope_record(row), "username": user.username,
                  "method": method.code if method is not None else None})
    return row


def approve_signatory_scope(session: Session, actor: User, scope: SignatoryScope) -> SignatoryScope:
    """Put a proposed scope in force (quality manager): never by its proposer, never by the
    signatory themself."""
    ensure(session, actor, Permission.SCOPES_APPROVE)
    row = _locked(session, scope)
    calendar, now = lab_calendar(session), utcnow()
    if row.ended_at is not None:
        raise errors.ScopeAlreadyEnded(scope=row.id, on=calendar.local_date(row.ended_at).isoformat())
    if row.approved_at is not None:
        raise errors.ScopeAlreadyApproved(scope=row.id, at=row.approved_at.astimezone(calendar.tz)
                                          .strftime("%Y-%m-%d %H:%M"))
    if row.proposed_by_id == actor.id:
        raise errors.ScopeApproverIsProposer(scope=row.id)
    if row.user_id == actor.id:
        raise errors.ScopeApproverIsSignatory(scope=row.id)
    if row.valid_to is not None and row.valid_to < calendar.today():
        raise errors.ScopeExpired(scope=row.id, valid_to=row.valid_to.isoformat())
    row.approved_at, row.approved_by_id = now, actor.id
    session.flush()
    audit.append(session, actor, "reports.signatory_scope_approved", "signatory_scope", row.id,
                 {"approved_at": None}, {**_scope_record(row), "approved_at": now})
    return row


def may_end(session: Session, actor: User) -> bool:
    return any(has_permission(session, actor.id, p) for p in END_PERMISSIONS)


def end_signatory_scope(session: Session, actor: User, scope: SignatoryScope, reason: Any,
                        end_on: Any) -> SignatoryScope:
    """End a scope (or withdraw a proposal) from the lab day `end_on` on (today or later: what
    was approved before stays within scope). Either manager may; kept, never deleted."""
    if not may_end(session, actor):
        ensure(session, actor, END_PERMISSIONS[0])
    calendar = lab_calendar(session)
    row = _locked(session, scope)
    if row.ended_at is not None:
        raise errors.ScopeAlreadyEnded(scope=row.id, on=calendar.local_date(row.ended_at).isoformat())
    why = lab_input.text(reason, "终止原因", "The reason for ending", 500, required=True)
    day = _day(end_on, "终止日期", "The end date")
    today = calendar.today()
    if day < today:
        raise errors.EndDateInPast(on=day.isoformat(), today=today.isoformat())
    row.ended_at, row.ended_by_id, row.end_reason = calendar.start_of(day), actor.id, why
    session.flush()
    audit.append(session, actor, "reports.signatory_scope_ended", "signatory_scope", row.id, {"ended_at": None},
                 {**_scope_record(row), "ended_at": row.ended_at, "end_on": day, "reason": why})
    return row


STATUS_WORDS = {"proposed": ("待批准", "proposed"), "in_force": ("有效", "in force"),
                "not_yet_valid": ("尚未生效", "not yet valid"), "expired": ("已到期", "expired"),
                "ended": ("已终止", "ended")}
END_PERMISSIONS = (Permission.SCOPES_MANAGE, Permission.SCOPES_APPROVE)


@dataclass
class ScopeRow:
    scope: SignatoryScope
    user: User
    method: Method | None
    status: str


def _status_clause(status: str, today: date, now: datetime) -> tuple:
    ended = and_(SignatoryScope.ended_at.is_not(None), SignatoryScope.ended_at <= now)
    live = _not_ended(now)
    approved = SignatoryScope.approved_at.is_not(None)
    return {
        "ended": (ended,),
        "proposed": (live, SignatoryScope.approved_at.is_(None)),
        "expired": (live, approved, SignatoryScope.valid_to < today),
        "not_yet_valid": (live, approved, SignatoryScope.valid_from > today,
                          or_(SignatoryScope.valid_to.is_(None), SignatoryScope.valid_to >= today)),
        "in_force": (live, approved, SignatoryScope.valid_from <= today,
                     or_(SignatoryScope.valid_to.is_(None), SignatoryScope.valid_to >= today)),
    }.get(status, ())


def list_signatory_scopes(session: Session, *, person: str = "", method: str = "", matrix: str = "",
                          status: str = "", page: int = 1, size: int = 25) -> Page[ScopeRow]:
    """The register of signatory scopes, filtered by person, method code, matrix and status;
    awaiting approval first, then by person. Two queries a page whatever its size."""
    calendar, now = lab_calendar(session), utcnow()
    today = calendar.today()
    query = select(SignatoryScope, User, Method).join(User, User.id == SignatoryScope.user_id) \
        .outerjoin(Method, Method.id == SignatoryScope.method_id)
    who = re.sub(r"\s+", " ", person or "").strip()[:60]
    if who:
        query = query.where(User.username.contains(who, autoescape=True)
                            | User.display_name_zh.contains(who, autoescape=True)
                            | func.upper(User.display_name_en).contains(who.upper(), autoescape=True))
    code = clean_code(method or "")[:60]
    if code:
        query = query.where(func.upper(Method.code).contains(code, autoescape=True))
    if matrix in MATRICES:
        query = query.where(SignatoryScope.matrix == matrix)
    query = query.where(*_status_clause(status, today, now))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    rows = session.execute(query.order_by(SignatoryScope.approved_at.is_not(None), User.username,
                                          SignatoryScope.valid_from.desc(), SignatoryScope.id.desc())
                           .limit(size).offset((page - 1) * size)).all()
    return Page([ScopeRow(s, u, m, scope_status(s, today, now)) for s, u, m in rows], page, size, total)


def count_awaiting_approval(session: Session, user: Any) -> int:
    """Proposed scopes this user could approve (not their own proposal, not their own scope)."""
    return session.scalar(select(func.count()).select_from(SignatoryScope).where(
        *_status_clause("proposed", lab_calendar(session).today(), utcnow()),
        SignatoryScope.proposed_by_id != user.id, SignatoryScope.user_id != user.id)) or 0


def signatories_now(session: Session) -> list[User]:
    """Active people holding the signatory role now or from a later date: whom a scope may name."""
    now = utcnow()
    holders = select(RoleGrant.user_id).where(
        RoleGrant.status == "active", RoleGrant.role == Role.SIGNATORY.value,
        or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > now))
    return list(session.scalars(select(User).where(User.id.in_(holders), User.active.is_(True))
                                .order_by(User.username)))


# ---------------------------------------------------------------- for the pages


def certificate_row(session: Session, certificate_id: int) -> CertificateRow:
    """One certificate record with its state, item count and replacement (for a chosen record
    not on the current page of the list)."""
    cert = get_certificate(session, certificate_id)
    latest = latest_record_of(session, cert.certificate_no)
    replaced_by = session.scalar(select(func.min(AccreditationCertificate.id)).where(
        AccreditationCertificate.certificate_no == cert.certificate_no, AccreditationCertificate.id > cert.id)) \
        if latest is not None and latest.id != cert.id else None
    count = session.scalar(select(func.count()).select_from(AccreditationItem)
                           .where(AccreditationItem.certificate_id == cert.id)) or 0
    return CertificateRow(cert, certificate_state(cert, lab_calendar(session).today(), replaced_by), count, replaced_by)


def scope_in_force_csv(session: Session, on: date) -> str:
    """The whole CMA scope in force on `on` as a CSV (each line once, whichever record holds it)."""
    in_force = select(_CertificateAlias.c.id).where(*_in_force_clause(on))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["parameter", "method_code", "matrix"])
    for row in session.execute(
            select(AccreditationItem.parameter, AccreditationItem.method_code, AccreditationItem.matrix).distinct()
            .where(AccreditationItem.certificate_id.in_(in_force))
            .order_by(AccreditationItem.matrix, AccreditationItem.method_code, AccreditationItem.parameter)):
        writer.writerow(list(row))
    return out.getvalue()


@dataclass
class ScopeView:
    scope: SignatoryScope
    status: str
    method: Method | None
    people: dict[int, User]

    def person(self, user_id: int | None) -> User | None:
        return self.people.get(user_id) if user_id else None


def scope_view(session: Session, scope_id: int) -> ScopeView:
    """A scope with its status, method and the people named on it (holder, proposer, approver,
    who ended it): three queries."""
    scope = get_scope(session, scope_id)
    method = session.get(Method, scope.method_id) if scope.method_id else None
    ids = {i for i in (scope.user_id, scope.proposed_by_id, scope.approved_by_id, scope.ended_by_id) if i}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}
    return ScopeView(scope, scope_status(scope, lab_calendar(session).today(), utcnow()), method, people)


def may_end_by_permissions(permissions: Iterable[Any]) -> bool:
    """Whether a page offers the end form: to either manager."""
    held = set(permissions)
    return any(p in held for p in END_PERMISSIONS)
