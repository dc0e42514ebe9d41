"""Reminders of reference materials, standard solutions and reagents: what expires within 30
days, what has expired but is still on the shelf, and which materials are low in stock.

They join the instruments' reminders: `lims reminders` prints them after the instrument table,
and one reminder mail (`lims reminders --mail`, or the daily job of `lims serve`) carries both.
A mail that went out is recorded per domain it reminded of (`instrument.reminders_sent`,
`material.reminders_sent`, same Message-ID); the daily job skips a lab day on which either was
recorded. The same three selections are the dashboard cards of the custodian.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.core import audit, mail
from app.core.audit import AuditEvent
from app.core.db import Database, utcnow
from app.core.i18n import N_
from app.core.labtime import LabCalendar, lab_calendar
from app.core.permissions import Permission
from app.core.registry import Worklist, add_worklist
from app.instruments import reminders as instrument_reminders
from app.instruments.models import InstrumentStatus
from app.reference_materials import queries
from app.reference_materials.gate import valid_until_text
from app.reference_materials.models import ItemKind
from app.reference_materials.service import STATE_LABELS

EXPIRING_DAYS = 30  # the "expiring within 30 days"
SENT_ACTION = "material.reminders_sent"
ENTITY_TYPE, ENTITY_ID = "material_reminders", "mail"
SIGNATURE = "-- EnviroLIMS\n"

KIND_TEXT = {
    ItemKind.UNIT: ("标准物质", "CRM unit"),
    ItemKind.SOLUTION: ("标准溶液", "standard solution"),
    ItemKind.REAGENT: ("试剂", "reagent"),
}

# Where the dashboard cards lead (the pages and their filters live in routes.py).
EXPIRING_HREF = "/reference-materials/due?list=expiring"
EXPIRED_HREF = "/reference-materials/due?list=expired"
LOW_STOCK_HREF = "/reference-materials?stock=low"


@dataclass(frozen=True)
class ExpiryLine:
    """One stocked item to remind about, in the lab's calendar."""

    barcode: str
    kind: ItemKind
    name: str
    name_en: str
    certificate_no: str
    lot_no: str
    state: str
    expires_at: datetime
    valid_until: str  # "2026-06-30" (through that lab day) or "2026-06-30 14:20" (opened + shelf life)
    days: int  # expiring: lab days left after today; expired: lab days since the last valid day

    @property
    def lot(self) -> str:
        return " ".join(part for part in (self.certificate_no, self.lot_no) if part)

    @property
    def state_text(self) -> tuple[str, str]:
        return STATE_LABELS.get(self.state, (self.state, self.state))


@dataclass(frozen=True)
class LowStockLine:
    certificate_no: str
    name_zh: str
    name_en: str
    usable_units: int
    min_stock_units: int


@dataclass(frozen=True)
class MaterialReminders:
    expiring: list[ExpiryLine] = field(default_factory=list)
    expired: list[ExpiryLine] = field(default_factory=list)
    low_stock: list[LowStockLine] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.expiring) + len(self.expired) + len(self.low_stock)

    @property
    def empty(self) -> bool:
        return self.count == 0


def _last_valid_day(calendar: LabCalendar, expires_at: datetime) -> date:
    return calendar.local_date(expires_at - timedelta(microseconds=1))


def _expiry_line(calendar: LabCalendar, row: queries.ItemRow, days: int) -> ExpiryLine:
    return ExpiryLine(row.barcode, row.kind, row.name, row.name_en, row.certificate_no, row.lot_no, row.state,
                      row.expires_at, valid_until_text(calendar, row.expires_at), days)


def material_reminder_lines(session: Session, now: datetime | None = None) -> MaterialReminders:
    """The three lists, in three queries: expiring soonest first, expired longest ago first, low
    stock by certificate number."""
    now = now or utcnow()
    calendar = lab_calendar(session)
    today = calendar.local_date(now)
    expiring = [_expiry_line(calendar, row, (_last_valid_day(calendar, row.expires_at) - today).days)
                for row in queries.expiring_within(session, EXPIRING_DAYS, now=now)]
    expired = [_expiry_line(calendar, row, (today - _last_valid_day(calendar, row.expires_at)).days)
               for row in queries.expired_in_stock(session, now=now)]
    low = [LowStockLine(s.material.certificate_no, s.material.name_zh, s.material.name_en, s.usable_units,
                        s.min_stock_units) for s in queries.low_stock(session, now=now)]
    return MaterialReminders(expiring, expired, low)


# ---------------------------------------------------------------- the printed tables (lims reminders)


def _expiry_table(title: str, lines: list[ExpiryLine], days_header: str, style: str) -> Table:
    table = Table(title=title)
    for column, wrap in (("barcode 条码", False), ("kind 类别", False), ("name 名称", True), ("lot 证书/批号", True),
                         ("state 状态", False), ("valid until 有效期至", False), (days_header, False)):
        table.add_column(column, no_wrap=not wrap, overflow="fold")
    for line in lines:
        kind_zh, kind_en = KIND_TEXT[line.kind]
        state_zh, state_en = line.state_text
        table.add_row(escape(line.barcode), f"{kind_en} {kind_zh}", escape(line.name), escape(line.lot),
                      f"{state_en} {state_zh}", f"[{style}]{escape(line.valid_until)}[/{style}]", str(line.days))
    return table


def tables(reminders: MaterialReminders, today: date, tz_name: str) -> list[Table]:
    """Rich tables of the non-empty lists, bilingual headers like the instruments' table."""
    found = []
    if reminders.expiring:
        found.append(_expiry_table(
            f"Reference materials expiring within {EXPIRING_DAYS} days / "
            f"{EXPIRING_DAYS} 天内到期的标准物质、标准溶液与试剂 ({today}, {tz_name})",
            reminders.expiring, "days left 剩余天数", "yellow"))
    if reminders.expired:
        found.append(_expiry_table(
            f"Expired but still in stock / 已过期仍在库 ({today}, {tz_name})", reminders.expired,
            "days expired 已过期天数", "red"))
    if reminders.low_stock:
        table = Table(title=f"Reference materials low in stock / 库存不足的标准物质 ({today}, {tz_name})")
        for column, wrap in (("certificate no. 证书编号", False), ("name 名称", True), ("usable units 可用单元", False),
                             ("minimum 最低库存", False)):
            table.add_column(column, no_wrap=not wrap, overflow="fold")
        for line in reminders.low_stock:
            name = line.name_zh + (f" ({line.name_en})" if line.name_en else "")
            table.add_row(escape(line.certificate_no), escape(name), f"[red]{line.usable_units}[/red]",
                          str(line.min_stock_units))
        found.append(table)
    return found


# ---------------------------------------------------------------- the mail


def _days_zh(line: ExpiryLine, expired: bool) -> str:
    if expired:
        return "今天过期" if line.days == 0 else f"已过期 {line.days} 天"
    return f"剩余 {line.days} 天"


def _days_en(line: ExpiryLine, expired: bool) -> str:
    if expired:
        return "expired today" if line.days == 0 else f"expired {line.days} days ago"
    return f"{line.days} days left"


def _item_zh(tag: str, line: ExpiryLine, expired: bool) -> str:
    lot = f" — {line.certificate_no} 批号 {line.lot_no}" if line.certificate_no else f" — 批号 {line.lot_no}"
    return (f"[{tag}] {line.barcode} {KIND_TEXT[line.kind][0]} {line.name}{lot} — 有效期至 {line.valid_until}"
            f"（{_days_zh(line, expired)}）— {line.state_text[0]}")


def _item_en(tag: str, line: ExpiryLine, expired: bool) -> str:
    lot = f" — {line.certificate_no} lot {line.lot_no}" if line.certificate_no else f" — lot {line.lot_no}"
    return (f"[{tag}] {line.barcode} {KIND_TEXT[line.kind][1]} {line.name_en or line.name}{lot} — valid until "
            f"{line.valid_until} ({_days_en(line, expired)}) — {line.state_text[1]}")


def mail_section(reminders: MaterialReminders, today: date, tz_name: str, lab: tuple[str, str] | None = None) -> str:
    """Plain text, Chinese first, then English (no signature: it may follow the instruments')."""
    lab_zh, lab_en = lab or ("", "")
    n_expiring, n_expired, n_low = len(reminders.expiring), len(reminders.expired), len(reminders.low_stock)
    zh = [f"{lab_zh + ' ' if lab_zh else ''}标准物质、标准溶液与试剂提醒（{today}，{tz_name}）",
          f"{EXPIRING_DAYS} 天内到期 {n_expiring} 件，已过期仍在库 {n_expired} 件，库存不足 {n_low} 种。", ""]
    zh += [_item_zh(f"{EXPIRING_DAYS} 天内到期", line, False) for line in reminders.expiring]
    zh += [_item_zh("已过期仍在库", line, True) for line in reminders.expired]
    zh += [f"[库存不足] {line.certificate_no} {line.name_zh} — 可用 {line.usable_units} 个单元，"
           f"最低库存 {line.min_stock_units} 个" for line in reminders.low_stock]
    zh += ["", "已过期的物品不得使用，请及时处置；库存不足的标准物质请及时采购。"]
    en = [f"{lab_en + ': ' if lab_en else ''}Reference material, standard solution and reagent reminder "
          f"({today}, {tz_name})",
          f"{n_expiring} expiring within {EXPIRING_DAYS} days, {n_expired} expired but still in stock, "
          f"{n_low} low in stock.", ""]
    en += [_item_en(f"expiring within {EXPIRING_DAYS} days", line, False) for line in reminders.expiring]
    en += [_item_en("expired, still in stock", line, True) for line in reminders.expired]
    en += [f"[low stock] {line.certificate_no} {line.name_en or line.name_zh} — {line.usable_units} usable "
           f"unit(s), minimum {line.min_stock_units}" for line in reminders.low_stock]
    en += ["", "Expired items must not be used: dispose of them. Order the materials that are low in stock."]
    return "\n".join([*zh, "", "-" * 60, "", *en])


def _material_counts(reminders: MaterialReminders) -> str:
    return (f"{len(reminders.expiring)} 即将到期 expiring, {len(reminders.expired)} 过期在库 expired in stock, "
            f"{len(reminders.low_stock)} 库存不足 low stock")


def subject(instrument_lines: list[instrument_reminders.ReminderLine], reminders: MaterialReminders,
            today: date) -> str:
    if reminders.empty:
        return instrument_reminders.subject(instrument_lines, today)
    if not instrument_lines:
        return f"标准物质提醒 Reference material reminders {today}: {_material_counts(reminders)}"
    return (f"{instrument_reminders.subject(instrument_lines, today)}; "
            f"标准物质 reference materials: {_material_counts(reminders)}")


def mail_body(instrument_lines: list[instrument_reminders.ReminderLine], reminders: MaterialReminders,
              today: date, tz_name: str, lab: tuple[str, str] | None = None) -> str:
    """The instruments' text as it is, then the materials' section, one signature at the end."""
    if reminders.empty:
        return instrument_reminders.mail_body(instrument_lines, today, tz_name, lab)
    section = mail_section(reminders, today, tz_name, lab)
    if not instrument_lines:
        return f"{section}\n\n{SIGNATURE}"
    instruments = instrument_reminders.mail_body(instrument_lines, today, tz_name, lab).removesuffix(SIGNATURE)
    return f"{instruments}{'=' * 60}\n\n{section}\n\n{SIGNATURE}"


def _lab_names(session: Session) -> tuple[str, str] | None:
    from app.people.service import current_lab

    lab = current_lab(session)
    return (lab.name_zh, lab.name_en) if lab is not None else None


def send_reminders(db: Database, settings: Settings, instrument_lines: list[instrument_reminders.ReminderLine],
                   reminders: MaterialReminders, now: datetime | None = None) -> None:
    """Mail both lists in one message to LIMS_REMINDER_TO, then record the sending for each
    domain it reminded of. Raises `MailNotConfigured` / `MailNotSent`; nothing is recorded when
    the mail did not go."""
    if not settings.mail_configured:
        raise mail.MailNotConfigured()
    now = now or utcnow()
    calendar = db.calendar
    today = calendar.local_date(now)
    with db.reading() as session:
        lab = _lab_names(session)
    recipients = settings.reminder_recipients
    message = mail.build_message(settings.mail_from, recipients, subject(instrument_lines, reminders, today),
                                 mail_body(instrument_lines, reminders, today, str(calendar.tz), lab))
    mail.send(settings, message)  # outside any transaction: a slow server holds no lock
    sent = {"day": today.isoformat(), "recipients": recipients, "message_id": message["Message-ID"]}
    with db.transaction() as session:
        if instrument_lines:
            audit.append(session, None, instrument_reminders.SENT_ACTION, instrument_reminders.ENTITY_TYPE,
                         instrument_reminders.ENTITY_ID, None, {
                             **sent,
                             "overdue": [line.asset_no for line in instrument_lines
                                         if line.status is InstrumentStatus.OVERDUE],
                             "due_soon": [line.asset_no for line in instrument_lines
                                          if line.status is InstrumentStatus.DUE_SOON],
                         })
        if not reminders.empty:
            audit.append(session, None, SENT_ACTION, ENTITY_TYPE, ENTITY_ID, None, {
                **sent, "expiring": [line.barcode for line in reminders.expiring],
                "expired_in_stock": [line.barcode for line in reminders.expired],
                "low_stock": [line.certificate_no for line in reminders.low_stock],
            })


def last_sent(session: Session) -> AuditEvent | None:
    """The latest material reminder mail recorded (served by the audit trail's entity index)."""
    return session.scalars(
        select(AuditEvent).where(AuditEvent.entity_type == ENTITY_TYPE, AuditEvent.entity_id == ENTITY_ID,
                                 AuditEvent.action == SENT_ACTION)
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()


def _day_of(event: AuditEvent | None) -> date:
    """The lab day a recorded reminder mail was for."""
    try:
        return date.fromisoformat(event.after_data["day"])
    except (AttributeError, TypeError, KeyError, ValueError):
        return date.min


def last_mail_day(session: Session) -> date:
    """The lab day of the latest reminder mail of either domain (date.min when none)."""
    return max(_day_of(instrument_reminders.last_sent(session)), _day_of(last_sent(session)))


def reminders_if_due(db: Database, settings: Settings, *, now: datetime | None = None) -> int | None:
    """The daily job: when mail is configured, it is past 08:00 lab time, no reminder mail was
    recorded today (lab day) and an instrument or a material needs attention, mail both lists.
    Returns how many lines were mailed, or None when nothing was sent."""
    if not settings.mail_configured:
        return None
    now = now or utcnow()
    local = now.astimezone(db.calendar.tz)
    if local.hour < instrument_reminders.SEND_FROM_HOUR:
        return None
    with db.reading() as session:
        if last_mail_day(session) >= local.date():
            return None
        instrument_lines = instrument_reminders.reminder_lines(session, now)
        materials = material_reminder_lines(session, now)
    if not instrument_lines and materials.empty:
        return None
    send_reminders(db, settings, instrument_lines, materials, now)
    return len(instrument_lines) + materials.count


# ---------------------------------------------------------------- dashboard cards


def _count_expiring(session: Session, user: object) -> int:
    return queries.count_expiring_within(session, EXPIRING_DAYS)


def _count_expired(session: Session, user: object) -> int:
    return queries.count_expired_in_stock(session)


def _count_low(session: Session, user: object) -> int:
    return queries.count_low_stock(session)


def register_worklists() -> None:
    """The custodian's cards (whoever manages the stock: custodian, technical manager)."""
    add_worklist(
        Worklist("materials_expiring", N_("Reference materials expiring within 30 days"), Permission.MATERIALS_MANAGE,
                 EXPIRING_HREF, _count_expiring, 40),
        Worklist("materials_expired_in_stock", N_("Expired reference materials still in stock"),
                 Permission.MATERIALS_MANAGE, EXPIRED_HREF, _count_expired, 41),
        Worklist("materials_low_stock", N_("Reference materials low in stock"), Permission.MATERIALS_MANAGE,
                 LOW_STOCK_HREF, _count_low, 42),
    )
