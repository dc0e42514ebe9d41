"""Sample numbers by the lab's pattern, e.g. `{site}-{yyMMdd}-{seq:03}` -> WS01-260312-007.

The pattern is a lab setting (`sample_no_pattern`). Its tokens: {site} {yyyy} {yy} {MM} {dd}
{yyMMdd} {yyyyMMdd}, and exactly one {seq} or {seq:0N} (zero-padded to N digits). The day is
the lab-local scheduled sampling day. The sequence counts per rendering of the pattern without
its sequence (the counter key, e.g. `WS01-260312-{seq}`): one `SampleNumberCounter` row per key,
created on first use and locked for the transaction, so concurrent registrations never share a
number and a rolled-back registration leaves no gap. Bulk registration takes a block of numbers
per key in one update. A sequence that outgrows its width keeps counting with more digits
(WS01-260312-1000 after -999) rather than refusing the 1000th sample of a day.

Numbers go into barcodes, web addresses and file names: outside its tokens a pattern holds only
letters, digits, '.', '_' and '-', and so does a site code that goes into a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.config import settings_of
from app.samples.errors import InvalidNumberPattern, InvalidSampleNumber
from app.samples.models import SampleNumberCounter

MAX_NUMBER_LENGTH = 40  # Sample.sample_no
MAX_KEY_LENGTH = 60  # SampleNumberCounter.key
MAX_SEQ_WIDTH = 9
SEQ_SLOT = "{seq}"  # stands for the sequence in a counter key (braces never occur otherwise)
DATE_TOKENS = {
    "yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "yyMMdd": "%y%m%d", "yyyyMMdd": "%Y%m%d",
}
TOKENS = ("site", "seq", *DATE_TOKENS)
_SEQ_RE = re.compile(r"seq(?::0([1-9]))?")
_PRINTABLE = re.compile(r"[\x21-\x7e]*")
# literal text between tokens: what is safe in a barcode, a URL path segment and a file name
_LITERAL_OK = re.compile(r"[A-Za-z0-9._-]*")
_CODE_OK = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Token:
    name: str  # site, seq, or a date token
    width: int = 0  # {seq:0N}


@dataclass(frozen=True)
class NumberPattern:
    """A parsed pattern: literal strings and tokens, in order."""

    text: str
    parts: tuple[str | Token, ...]

    def key(self, site: str, day: date) -> str:
        """The counter key: the number with the sequence left as `{seq}`."""
        return "".join(self._render_part(part, site, day, SEQ_SLOT) for part in self.parts)

    def render(self, site: str, day: date, seq: int) -> str:
        return "".join(self._render_part(part, site, day, seq) for part in self.parts)

    @staticmethod
    def _render_part(part: str | Token, site: str, day: date, seq: int | str) -> str:
        if isinstance(part, str):
            return part
        if part.name == "site":
            return site
        if part.name == "seq":
            return seq if isinstance(seq, str) else f"{seq:0{part.width}d}"
        return day.strftime(DATE_TOKENS[part.name])


def _refuse(pattern: str, zh: str, en: str) -> InvalidNumberPattern:
    return InvalidNumberPattern(pattern=pattern[:80], problem_zh=zh, problem_en=en)


def _check_literal(pattern: str, literal: str) -> None:
    if "{" in literal or "}" in literal:
        raise _refuse(pattern, "大括号不配对。", "its braces do not match.")
    if not _LITERAL_OK.fullmatch(literal):
        bad = next(c for c in literal if not _LITERAL_OK.fullmatch(c))
        raise _refuse(pattern, f"不能含有字符 “{bad}”；编号会出现在条码、网址和文件名中，"
                      "占位符之外只能用字母、数字、“.”、“_”和“-”。",
                      f"it contains “{bad}”; numbers appear in barcodes, web addresses and file names, so outside "
                      "the tokens only letters, digits, '.', '_' and '-' are allowed.")


@lru_cache(maxsize=64)
def parse_pattern(text: str) -> NumberPattern:
    """The pattern parsed, or InvalidNumberPattern saying what is wrong: an unknown token, no
    or several {seq}, unbalanced braces, characters that are not printable ASCII, or {seq}
    right next to {site} (a site code of varying length next to a sequence of varying length
    could render two different samples alike: A1 + 1 and A + 11)."""
    if not text or not text.strip():
        raise _refuse(text or "", "规则为空。", "it is empty.")
    if not _PRINTABLE.fullmatch(text):
        bad = next(c for c in text if not "\x21" <= c <= "\x7e")
        raise _refuse(text, f"含有字符 U+{ord(bad):04X}；编号要印成条码，只能使用可打印的 ASCII 字符且不含空格。",
                      f"it contains U+{ord(bad):04X}; numbers are printed as barcodes, so only printable "
                      "ASCII without spaces is allowed.")
    parts: list[str | Token] = []
    position = 0
    for match in re.finditer(r"\{([^{}]*)\}", text):
        literal = text[position:match.start()]
        _check_literal(text, literal)
        if literal:
            parts.append(literal)
        name = match.group(1)
        seq = _SEQ_RE.fullmatch(name)
        if seq:
            parts.append(Token("seq", int(seq.group(1) or 0)))
        elif name in DATE_TOKENS or name == "site":
            parts.append(Token(name))
        else:
            raise _refuse(text, f"未知的占位符 {{{name}}}；可用：{', '.join('{' + t + '}' for t in TOKENS)}，"
                          "序号可写作 {seq:03}。",
                          f"unknown token {{{name}}}; known are {', '.join('{' + t + '}' for t in TOKENS)}, "
                          "and {seq:03} for a zero-padded sequence.")
        position = match.end()
    tail = text[position:]
    _check_literal(text, tail)
    if tail:
        parts.append(tail)
    seqs = [i for i, p in enumerate(parts) if isinstance(p, Token) and p.name == "seq"]
    if len(seqs) != 1:
        raise _refuse(text, "必须恰好包含一个序号占位符 {seq}（或 {seq:03}）。",
                      "it must contain exactly one sequence token {seq} (or {seq:03}).")
    neighbours = [parts[i] for i in (seqs[0] - 1, seqs[0] + 1) if 0 <= i < len(parts)]
    if any(isinstance(p, Token) and p.name == "site" for p in neighbours):
        raise _refuse(text, "序号 {seq} 与点位 {site} 之间须有分隔符（如 “-”），否则不同样品可能得到相同编号。",
                      "put a separator (such as “-”) between {site} and {seq}, or two samples could get "
                      "the same number.")
    return NumberPattern(text, tuple(parts))


def lab_pattern(session: Session) -> NumberPattern:
    return parse_pattern(settings_of(session).sample_no_pattern)


def check_site_code(code: str) -> str:
    """A site code as it goes into a number: letters, digits, '.', '_' and '-'."""
    if not _CODE_OK.fullmatch(code or ""):
        raise InvalidSampleNumber(sample_no=code or "", problem_zh="点位编号只能含字母、数字、“.”、“_”和“-”。",
                                  problem_en="a site code in a number may hold letters, digits, '.', '_' and '-' only.")
    return code


def _insert(session: Session):  # noqa: ANN202 - the dialect's insert construct
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def reserve_numbers(session: Session, pattern: NumberPattern, site: str, day: date, count: int) -> list[str]:
    """The next `count` numbers of (site, day) under `pattern`, with one locked counter update."""
    if count < 1:
        raise ValueError("reserve at least one number")
    key = pattern.key(check_site_code(site), day)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidSampleNumber(sample_no=key, problem_zh=f"超过 {MAX_NUMBER_LENGTH} 个字符。",
                                  problem_en=f"longer than {MAX_NUMBER_LENGTH} characters.")
    # the first number of a key: whoever comes second finds the row instead of failing on it
    session.execute(_insert(session)(SampleNumberCounter).values(key=key, last=0).on_conflict_do_nothing())
    counter = session.execute(
        select(SampleNumberCounter).where(SampleNumberCounter.key == key)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    first = counter.last + 1
    counter.last += count
    session.flush()
    numbers = [pattern.render(site, day, n) for n in range(first, first + count)]
    if len(numbers[-1]) > MAX_NUMBER_LENGTH:
        raise InvalidSampleNumber(sample_no=numbers[-1], problem_zh=f"超过 {MAX_NUMBER_LENGTH} 个字符。",
                                  problem_en=f"longer than {MAX_NUMBER_LENGTH} characters.")
    return numbers


def reserve_number_blocks(session: Session, wanted: Iterable[tuple[str, date, int]],
                          pattern: NumberPattern | None = None) -> dict[tuple[str, date], list[str]]:
    """Numbers for many (site, day, count) at once: one counter update per distinct key, taken
    in key order so two bulk registrations lock their counters in the same order (no deadlock)."""
    pattern = pattern or lab_pattern(session)
    totals: dict[tuple[str, date], int] = {}
    for site, day, count in wanted:
        totals[(site, day)] = totals.get((site, day), 0) + count
    by_key = sorted(totals, key=lambda sd: pattern.key(check_site_code(sd[0]), sd[1]))
    return {sd: reserve_numbers(session, pattern, sd[0], sd[1], totals[sd]) for sd in by_key}


def next_sample_no(session: Session, site: str, day: date) -> str:
    return reserve_numbers(session, lab_pattern(session), site, day, 1)[0]
