"""What domains contribute to the shell: navigation entries, dashboard worklists, and scan
resolvers. Each domain registers its own in its routes module; the shell never imports them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import InvalidInput
from app.core.permissions import Permission


@dataclass(frozen=True)
class NavItem:
    key: str
    label: Any  # a lazy translation
    href: str
    permission: Permission
    order: int = 100


@dataclass(frozen=True)
class Worklist:
    """A dashboard card: how many things wait for this user, and where to find them."""

    key: str
    title: Any
    permission: Permission
    href: str
    count: Callable[[Session, Any], int]
    order: int = 100


@dataclass(frozen=True)
class ScanHit:
    url: str
    label: str


ScanResolver = Callable[[Session, Any, frozenset[Permission], str], ScanHit | None]


@dataclass(frozen=True)
class PageSection:
    """A section a later domain adds to the sample page (the evaluation against standards):
    `build` returns the section's context, or None to show nothing; `template` renders it. With a
    `permission`, the section is built (and its queries run) only for readers who hold it."""

    name: str
    template: str
    build: Callable[[Session, Any], Any]
    order: int = 100
    permission: str | None = None

_nav: dict[str, NavItem] = {}
_worklists: dict[str, Worklist] = {}
_resolvers: dict[str, ScanResolver] = {}
_sample_sections: dict[str, PageSection] = {}


def add_nav(*items: NavItem) -> None:
    for item in items:
        _nav[item.key] = item


def add_worklist(*lists: Worklist) -> None:
    for worklist in lists:
        _worklists[worklist.key] = worklist


def add_scan_resolver(name: str, resolver: ScanResolver) -> None:
    _resolvers[name] = resolver


def add_sample_section(section: PageSection) -> None:
    _sample_sections[section.name] = section


def sample_sections() -> list[PageSection]:
    return sorted(_sample_sections.values(), key=lambda s: s.order)


def nav_for(permissions: frozenset[Permission]) -> list[NavItem]:
    """The menu, once per address: an entry offered to several roles (one per permission, such
    as Review for checkers, reviewers and signatories) is listed once to whoever holds more."""
    entries: dict[str, NavItem] = {}
    for item in sorted((i for i in _nav.values() if i.permission in permissions), key=lambda i: i.order):
        entries.setdefault(item.href, item)
    return list(entries.values())


def worklists_for(permissions: frozenset[Permission]) -> list[Worklist]:
    """The cards a user sees, once each: a card offered to several roles (one entry per
    permission) is shown once to a user who has more than one of them."""
    cards: dict[str, Worklist] = {}
    for worklist in sorted((w for w in _worklists.values() if w.permission in permissions), key=lambda w: w.order):
        cards.setdefault(worklist.href, worklist)
    return list(cards.values())


# Printable ASCII and CJK; no control characters. Keyboard-wedge scanners send plain text.
SCAN_CODE_RE = re.compile(r"^[\x21-\x7e\u3000-\u9fff\uff00-\uffef][\x20-\x7e\u3000-\u9fff\uff00-\uffef]{0,127}$")


class MalformedBarcode(InvalidInput):
    code = "malformed_barcode"
    message_zh = "条码格式无效：只允许可打印字符，长度 1–128。"
    message_en = "Malformed barcode: printable characters only, 1–128 long."


def clean_scan_code(raw: str) -> str:
    code = raw.strip()
    if not SCAN_CODE_RE.match(code):
        raise MalformedBarcode()
    return code


def resolve_scan(
    session: Session, user: Any, permissions: frozenset[Permission], raw: str
) -> ScanHit | None:
    code = clean_scan_code(raw)
    for resolver in _resolvers.values():
        hit = resolver(session, user, permissions, code)
        if hit is not None:
            return hit
    return None


# ---------------------------------------------------------------- when reported data changes

# Listeners told that results of these samples changed after their batch was signed (a revision
# with a reason, a batch signed again): later domains keep what depends on them in step (the
# reports in review under those samples) without the earlier domain importing them.
SamplesChanged = Callable[[Session, Any, list[int]], Any]
_samples_changed: dict[str, SamplesChanged] = {}


def on_samples_changed(name: str, listener: SamplesChanged) -> None:
    _samples_changed[name] = listener


def samples_changed(session: Session, actor: Any, sample_ids: list[int]) -> None:
    """Tell every listener, in the caller's transaction (so their changes land with the act)."""
    ids = sorted({i for i in sample_ids if i is not None})
    if not ids:
        return
    for name in sorted(_samples_changed):
        _samples_changed[name](session, actor, ids)


# Listeners told that an analyst signed a batch (submitted, or signed again after a correction):
# the anomaly rules run over it in the same transaction (issue 10 "run on each submission").
BatchSigned = Callable[[Session, Any, int], Any]
_batch_signed: dict[str, BatchSigned] = {}


def on_batch_signed(name: str, listener: BatchSigned) -> None:
    _batch_signed[name] = listener


def batch_signed(session: Session, actor: Any, batch_id: int) -> None:
    for name in sorted(_batch_signed):
        _batch_signed[name](session, actor, batch_id)
