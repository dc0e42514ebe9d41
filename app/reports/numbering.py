"""Report numbers by the lab's pattern (`report_no_pattern`, default `BG{yyyy}-{seq:04}`).

The pattern language is the sample numbers' (app/samples/numbering.py: {yyyy} {yy} {MM} {dd}
{yyMMdd} {yyyyMMdd} and one {seq}/{seq:0N}), without {site}: a report may cover several sites.
The day is the lab-local day the report is created. The counter is a row of the same counter
table under a `report:` key, locked for the transaction: concurrent drafts never share a number,
and a rolled-back draft leaves no gap.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.config import settings_of
from app.reports.review_errors import InvalidReportNumberPattern
from app.samples.errors import InvalidNumberPattern
from app.samples.models import SampleNumberCounter
from app.samples.numbering import MAX_KEY_LENGTH, NumberPattern, Token, parse_pattern

KEY_PREFIX = "report:"
MAX_REPORT_NO = 36  # Report.report_no is 40: room for an amendment's "-A9"


def report_pattern(text: str) -> NumberPattern:
    """The report pattern parsed, refused with what is wrong (as for sample numbers) or {site}."""
    try:
        pattern = parse_pattern(text)
    except InvalidNumberPattern as refusal:
        raise InvalidReportNumberPattern(pattern=(text or "")[:80], problem_zh=refusal.params["problem_zh"],
                                         problem_en=refusal.params["problem_en"]) from None
    if any(isinstance(part, Token) and part.name == "site" for part in pattern.parts):
        raise InvalidReportNumberPattern(pattern=text[:80],
                                         problem_zh="报告可能涵盖多个点位，编号规则不能使用 {site}。",
                                         problem_en="a report may cover several sites, so {site} cannot be used.")
    return pattern


def _insert(session: Session):  # noqa: ANN202 - the dialect's insert construct
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def next_report_no(session: Session, day: date) -> str:
    """The next report number of the lab-local `day`, from the locked counter of its key."""
    pattern = report_pattern(settings_of(session).report_no_pattern)
    key = KEY_PREFIX + pattern.key("", day)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidReportNumberPattern(pattern=pattern.text[:80], problem_zh="生成的编号过长。",
                                         problem_en="the numbers it makes are too long.")
    session.execute(_insert(session)(SampleNumberCounter).values(key=key, last=0).on_conflict_do_nothing())
    counter = session.execute(
        select(SampleNumberCounter).where(SampleNumberCounter.key == key)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    counter.last += 1
    session.flush()
    number = pattern.render("", day, counter.last)
    if len(number) > MAX_REPORT_NO:
        raise InvalidReportNumberPattern(pattern=pattern.text[:80],
                                         problem_zh=f"生成的编号超过 {MAX_REPORT_NO} 个字符。",
                                         problem_en=f"the numbers it makes exceed {MAX_REPORT_NO} characters.")
    return number
