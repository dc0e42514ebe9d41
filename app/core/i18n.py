"""Babel translations for zh_CN and en, selected per request through a context variable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from babel.support import LazyProxy, NullTranslations, Translations

from app.config import SUPPORTED_LANGUAGES

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LANGUAGE = "zh_CN"

_language: ContextVar[str] = ContextVar("lims_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> NullTranslations:
    return Translations.load(str(LOCALE_DIR), [language], domain="messages")


def current_language() -> str:
    return _language.get()


def set_language(language: str) -> None:
    _language.set(language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE)


@contextmanager
def use_language(language: str) -> Iterator[None]:
    token = _language.set(language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _language.reset(token)


def gettext(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


def lazy_gettext(message: str) -> LazyProxy:
    """For module-level strings: translated when rendered, in the reader's language."""
    return LazyProxy(gettext, message, enable_cache=False)


_ = gettext
N_ = lazy_gettext


def source_text(message: Any) -> str:
    """The English source of a lazy translation (printouts translate it themselves, bilingual)."""
    return message._args[0] if isinstance(message, LazyProxy) else str(message)


def is_chinese(language: str | None = None) -> bool:
    return (language or current_language()).startswith("zh")


def pick(zh: str | None, en: str | None, language: str | None = None) -> str:
    """Choose the zh or en variant of a bilingual field, falling back to the other."""
    if is_chinese(language):
        return zh or en or ""
    return en or zh or ""
