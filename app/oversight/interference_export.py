"""The interference register exported (§6 "归档备查"): XLSX for the authority's spreadsheet and
PDF for the file. Both hold what the exporting overseer may see, one row per record with its
state, where and when it was reported, and the SHA-256 of every attachment; both are audited.

Text typed by users reaches the spreadsheet as text: a cell starting with = + - @ (or a tab or
carriage return) is prefixed with ' so Excel never evaluates it as a formula (CSV/formula
injection)."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.core import audit, i18n
from app.core.db import utcnow
from app.core.i18n import N_
from app.core.labtime import lab_calendar
from app.core.pdf import print_context, render_document
from app.core.permissions import Permission, ensure
from app.oversight import interference
from app.oversight import interference_errors as errors
from app.oversight.interference import RecordDetail, RegisterFilter
from app.people.models import User

# What each stored value is called on pages and in exports.
CHANNEL_NAMES = {
    "instruction": N_("Written instruction (批示)"), "letter": N_("Letter (函文)"),
    "oral": N_("Oral opinion (口头意见)"),
    "hint": N_("Hint (暗示)"), "phone": N_("Phone call"), "message": N_("Message (SMS, WeChat)"), "other": N_("Other"),
}
REQUEST_NAMES = {
    "alter_data": N_("Alter data"), "move_site": N_("Move a site"), "stop_site": N_("Stop a site"),
    "skip_sampling": N_("Skip sampling"), "delay_sampling": N_("Delay sampling"),
    "withhold_report": N_("Withhold a report"), "alter_report": N_("Alter a report"),
    "set_targets": N_("Set environmental-quality targets"), "other": N_("Other"),
}
RESPONSE_NAMES = {"refused": N_("Refused"), "complied": N_("Complied"), "escalated": N_("Escalated")}
STATE_NAMES = {"filed": N_("Filed"), "acknowledged": N_("Acknowledged"), "reported": N_("Reported to an authority")}
STATE_BADGES = {"filed": "warn", "acknowledged": "muted", "reported": "good"}
KIND_NAMES = {"supplement": N_("Supplement"), "acknowledged": N_("Acknowledged"),
              "reported": N_("Reported to an authority")}

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = [
    ("Record no.", "记录编号"), ("Occurred at", "发生时间"), ("Interferer", "干预人"), ("Position", "职务"),
    ("Organisation", "单位"), ("Channel", "干预方式"), ("Request", "干预要求类别"), ("What was asked", "干预内容"),
    ("Affected objects", "涉及对象"), ("Lab response", "本室处理"), ("Response detail", "处理说明"),
    ("Witnesses", "见证人"), ("Restricted", "仅限质量负责人和检查员"), ("Filed by", "记录人"), ("Filed at", "记录时间"),
    ("State", "状态"), ("Reported to", "报告对象"), ("Reported on", "报告日期"),
    ("Attachments (SHA-256)", "附件 (SHA-256)"),
]


def safe_cell(value: Any) -> Any:
    """User text as a literal: never a formula when the sheet is opened."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _row(detail: RecordDetail, tz: Any) -> list[Any]:
    r = detail.record
    return [
        r.record_no,
        r.occurred_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        r.interferer_name, r.interferer_position, r.interferer_organisation,
        str(CHANNEL_NAMES.get(r.channel, r.channel)), str(REQUEST_NAMES.get(r.request_kind, r.request_kind)),
        r.what_was_asked,
        "; ".join(f"{t.target_type}:{t.label}" for t in detail.targets),
        str(RESPONSE_NAMES.get(r.lab_response, r.lab_response)), r.response_detail, r.witnesses,
        ("是" if r.restricted else "否") if i18n.is_chinese() else ("yes" if r.restricted else "no"),
        f"{detail.filer.printed_name} ({detail.filer.username})",
        r.filed_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        str(STATE_NAMES.get(detail.state, detail.state)),
        "; ".join(s.reported_to for s in detail.reported),
        "; ".join(s.reported_on.isoformat() for s in detail.reported if s.reported_on),
        "\n".join(f"{f.filename} {a.sha256}" for a, f, _ in detail.attachments),
    ]


def register_xlsx(session: Session, actor: User, filters: RegisterFilter) -> bytes:
    """The register as a workbook; the export is audited in the caller's transaction."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    details = interference.register_for_export(session, actor, filters)
    tz = lab_calendar(session).tz
    chinese = i18n.is_chinese()
    book = Workbook()
    sheet = book.active
    sheet.title = "干预留痕" if chinese else "Interference log"
    sheet.append([zh if chinese else en for en, zh in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for detail in details:
        sheet.append([safe_cell(v) for v in _row(detail, tz)])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    widths = [14, 17, 14, 12, 18, 10, 14, 40, 24, 10, 30, 14, 8, 18, 17, 12, 20, 12, 60]
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = width
    sheet.freeze_panes = "B2"
    exported_at = utcnow()
    sheet.append([])
    sheet.append([safe_cell(f"{'导出时间' if chinese else 'Exported at'}: "
                            f"{exported_at.astimezone(tz):%Y-%m-%d %H:%M} ({tz}) · "
                            f"{'导出人' if chinese else 'Exported by'}: {actor.printed_name} ({actor.username})")])
    buffer = io.BytesIO()
    book.save(buffer)
    interference.record_export(session, actor, filters, "xlsx", len(details))
    return buffer.getvalue()


def register_pdf(session: Session, actor: User, filters: RegisterFilter, *, language: str,
                 now: datetime | None = None) -> bytes:
    """The register printed (A4 landscape): a table and a footer with the export time and the
    exporter; the export is audited in the caller's transaction."""
    details = interference.register_for_export(session, actor, filters)
    context = {**print_context(session, now=now), "details": details, "exporter": actor,
               "channel_names": CHANNEL_NAMES, "request_names": REQUEST_NAMES, "response_names": RESPONSE_NAMES,
               "state_names": STATE_NAMES,
               "filters": filters.params()}
    data = render_document("oversight/interference_pdf.html", context, language=language)
    interference.record_export(session, actor, filters, "pdf", len(details))
    return data


# ---------------------------------------------------------------- one record's package


def _safe_name(name: str) -> str:
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .") or "attachment"
    return cleaned[:120]


def record_package(session: Session, actor: User, record_no: str) -> tuple[str, bytes]:
    """The package sent to the authority (§6 "reporting"): the record with its targets and
    supplements as canonical JSON, every attachment as stored, and SHA256SUMS over all of them.
    An attachment whose bytes no longer match its hash is refused, not packed."""
    from app.core.canonical import canonical_json

    ensure(session, actor, Permission.INTERFERENCE_OVERSEE)
    detail = interference.record_detail(session, actor, record_no)
    record = detail.record
    store = interference.attachment_store(session)
    content = {
        **interference.record_content(record, detail.targets, [(a, f) for a, f, _ in detail.attachments]),
        "filed_at": record.filed_at.astimezone(UTC).isoformat(),
        "filed_by": detail.filer.username,
        "interferer_username": detail.interferer_user.username if detail.interferer_user else None,
        "state": detail.state,
        "supplements": [{"kind": s.kind, "text": s.text, "reported_to": s.reported_to,
                         "reported_on": s.reported_on.isoformat() if s.reported_on else None,
                         "recorded_at": s.recorded_at.astimezone(UTC).isoformat(), "recorded_by": u.username}
                        for s, u in detail.supplements],
        "exported_at": utcnow().isoformat(), "exported_by": actor.username,
    }
    record_json = canonical_json(content).encode("utf-8")
    sums = [(hashlib.sha256(record_json).hexdigest(), "record.json")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("record.json", record_json)
        for attachment, stored, _ in detail.attachments:
            if stored.sha256 != attachment.sha256 or not store.verify(stored.sha256):
                raise errors.AttachmentAltered(filename=stored.filename[:80])
            path = f"attachments/{attachment.id}-{_safe_name(stored.filename)}"
            archive.write(store.path(stored.sha256), path)
            sums.append((attachment.sha256, path))
        archive.writestr("SHA256SUMS", "".join(f"{sha}  {path}\n" for sha, path in sums))
    audit.append(session, actor, "oversight.interference_exported", "interference_record", record.id, None,
                 {"format": "package", "record_no": record.record_no, "files": [{"sha256": s, "path": p}
                                                                                for s, p in sums]})
    return f"{record.record_no}-package.zip", buffer.getvalue()
