"""Catalogue completeness and the catalogue in use.

Extraction runs in-process with the project's babel.cfg, so a new `_()`/`N_()` string without
a zh_CN translation fails here, not in front of a lab. The page tests compile the .po files
into a temporary directory and point app.core.i18n at it: they test the catalogue as it is
in the tree, never a stale .mo from an earlier build (test_built_catalogue_is_current checks
that build separately).
"""

from __future__ import annotations

import re
from collections import Counter
from html import unescape
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from app.core import i18n, labels
from app.core.roles import Role
from app.core.signatures import SignatureMeaning
from tests.conftest import PASSWORD, login

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "app" / "locale"
LANGUAGES = ("zh_CN", "en")
PLACEHOLDER_RE = re.compile(r"%\((\w+)\)[sdifr]|%[sdifr]|\{\w*\}")


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def load_po(language: str) -> Catalog:
    with po_path(language).open("rb") as f:
        return read_po(f, locale=language)


def extracted_msgids() -> dict[str, str]:
    """Every msgid `make i18n` would extract (babel.cfg, default keywords), with where it is."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def placeholders(text: str) -> Counter[str]:
    return Counter(match.group(0) for match in PLACEHOLDER_RE.finditer(text))


def visible_text(html: str) -> str:
    """What a reader sees: no tags, attributes, scripts or styles; whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def catalogue_messages(catalog: Catalog) -> dict[str, str]:
    """msgid -> translation; a plural message counts under its singular id (first form) and its
    plural id (second form, or the only one: zh_CN has a single plural form)."""
    messages: dict[str, str] = {}
    for m in catalog:
        if not m.id:
            continue
        if isinstance(m.id, str):
            messages[m.id] = m.string
        else:
            forms = list(m.string or ("",))
            for index, msgid in enumerate(m.id):
                messages[msgid] = forms[min(index, len(forms) - 1)]
    return messages


# ---------------------------------------------------------------- the catalogues themselves


def test_every_extracted_message_has_a_chinese_translation() -> None:
    found = extracted_msgids()
    assert len(found) > 50, "extraction found almost nothing: is babel.cfg broken?"
    catalog = catalogue_messages(load_po("zh_CN"))
    fuzzy = {m.id for m in load_po("zh_CN") if m.id and m.fuzzy}
    untranslated = sorted(
        f"{msgid!r} ({where})" for msgid, where in found.items()
        if not catalog.get(msgid, "").strip() or msgid in fuzzy
    )
    assert not untranslated, (
        "Messages without a zh_CN translation (run `make i18n`, then translate them in "
        f"{po_path('zh_CN').relative_to(ROOT)}):\n  " + "\n  ".join(untranslated)
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_is_compilable(language: str) -> None:
    """pybabel compile silently skips a catalogue whose header is fuzzy; fuzzy entries are dropped."""
    catalog = load_po(language)
    assert not catalog.fuzzy, f"{po_path(language)} header is marked fuzzy: it would not compile"
    fuzzy = sorted(m.id for m in catalog if m.id and m.fuzzy)
    assert not fuzzy, f"fuzzy entries in {language}: {fuzzy}"
    errors = [(m.id, e) for m, e in catalog.check()]  # babel's own checks (placeholders, plurals)
    assert not errors, errors


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_placeholders(language: str) -> None:
    wrong = [
        f"{m.id!r} -> {m.string!r}"
        for m in load_po(language)
        if m.id and isinstance(m.id, str) and m.string
        and placeholders(m.id) != placeholders(m.string)
    ]
    assert not wrong, "placeholders differ between msgid and msgstr:\n  " + "\n  ".join(wrong)


def test_labels_cover_every_stored_key() -> None:
    assert set(labels.ROLE_LABELS) == {r.value for r in Role}
    assert set(labels.SIGNATURE_MEANING_LABELS) == {m.value for m in SignatureMeaning}
    assert {"proposed", "active", "rejected"} <= set(labels.GRANT_STATUS_LABELS)


def test_english_role_labels_read_as_words() -> None:
    """Role keys are msgids such as "quality_manager"; the en catalogue gives them their name."""
    english = catalogue_messages(load_po("en"))
    bare = sorted(key for key in labels.ROLE_LABELS if not english.get(key, "").strip())
    assert not bare, f"roles without an English label in the en catalogue: {bare}"


def test_built_catalogue_is_current() -> None:
    """The .mo the app loads (compiled by scripts/setup.sh) says what the .po says."""
    for language in LANGUAGES:
        mo = po_path(language).with_suffix(".mo")
        assert mo.exists(), f"{mo} missing: run `bash scripts/setup.sh` (or `make setup`)"
        with mo.open("rb") as f:
            built = {k: v for k, v in catalogue_messages(read_mo(f)).items() if v and v != k}
        # an untranslated plural is compiled as its msgid: both sides skip "translations" to itself
        wanted = {k: v for k, v in catalogue_messages(load_po(language)).items() if v and v != k}
        assert built == wanted, f"{mo} is stale: run `bash scripts/setup.sh` to recompile it"


# ---------------------------------------------------------------- the catalogue in use


@pytest.fixture(scope="session")
def compiled_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree's .po files compiled now, as `pybabel compile` does (fuzzy entries left out)."""
    target = tmp_path_factory.mktemp("locale")
    for language in LANGUAGES:
        out = target / language / "LC_MESSAGES"
        out.mkdir(parents=True)
        with (out / "messages.mo").open("wb") as f:
            write_mo(f, load_po(language), use_fuzzy=False)
    return target


@pytest.fixture
def fresh_catalogue(compiled_locale: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(i18n, "LOCALE_DIR", compiled_locale)
    i18n.translations.cache_clear()
    yield
    i18n.translations.cache_clear()


uses_tree_catalogue = pytest.mark.usefixtures("fresh_catalogue")


@uses_tree_catalogue
def test_login_page_is_chinese_by_default(client) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "登录 EnviroLIMS" in text
    assert "Sign in" not in text


@uses_tree_catalogue
def test_login_page_is_english_with_language_cookie(client) -> None:
    client.cookies.set("lims_lang", "en")
    text = visible_text(client.get("/login").text)
    assert "Sign in to EnviroLIMS" in text
    assert "登录" not in text


@uses_tree_catalogue
def test_signed_in_pages_are_chinese(client, users) -> None:
    login(client, "quality-manager")
    page = client.get("/dashboard").text
    text = visible_text(page)
    for words in ("工作台", "退出登录", "审计追踪", "待您审批的角色授权"):
        assert words in text, words
    assert 'placeholder="扫描或输入条码"' in page
    assert "Dashboard" not in text and "Sign out" not in text


@uses_tree_catalogue
def test_role_labels_are_translated_on_account(client, users) -> None:
    login(client, "quality-manager")
    text = visible_text(client.get("/account").text)
    assert "质量负责人" in text
    assert "quality_manager" not in text
    client.cookies.set("lims_lang", "en")
    text = visible_text(client.get("/account").text)
    assert "Quality manager" in text
    assert "quality_manager" not in text


@uses_tree_catalogue
def test_roles_and_grant_status_are_translated_on_user_page(client, users) -> None:
    login(client, "admin")
    page = client.get(f"/people/users/{users['technical_manager'].id}").text
    text = visible_text(page)
    zh = i18n.translations("zh_CN")
    assert re.search(r"技术负责人\s+生效", text), text  # the grant row: role, then status
    select = re.search(r'<select[^>]*name="role"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no propose-role select on the user page"
    options = dict(re.findall(r'<option[^>]*value="(\w+)"[^>]*>(.*?)</option>', select.group(1), re.S))
    assert set(options) == {r.value for r in Role}
    for key, label in options.items():  # every role by its label, never its key
        assert visible_text(label) == zh.gettext(key) != key, (key, label)


@uses_tree_catalogue
def test_signature_meaning_is_translated(client, users) -> None:
    token = login(client, "quality-manager")
    response = client.post("/oversight/audit/review",
                           data={"password": PASSWORD, "note": "月度审查", "csrf_token": token})
    assert response.status_code == 303, response.text
    text = visible_text(client.get("/oversight/audit/integrity").text)
    assert re.search(r"·\s*审核\s*·", text), text  # name · meaning · time
    assert "reviewed" not in text
