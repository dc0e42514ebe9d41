"""The web shell in a real browser: sign-in, language, navigation of every role at phone and
desktop widths, the scan box, htmx form errors and a signed review of the audit trail."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    ensure_language,
    html_lang,
    open_menu,
    sign_in,
    sign_out,
    switch_language,
    zh_catalogue_compiled,
)
from tests.e2e.layout import layout_problems, menu_problems

pytestmark = pytest.mark.e2e

ROLES = ["admin", "quality", "technical", "sampler", "custodian", "analyst", "checker",
         "reviewer", "signatory", "inspector"]
LANGS = {"zh_CN": "zh", "en": "en"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def slug(href: str) -> str:
    """/oversight/audit/integrity -> integrity, /people/users -> users."""
    return href.rstrip("/").rsplit("/", 1)[-1] or "home"


def assert_dashboard_language(page, language: str) -> None:
    """The page speaks `language`: <html lang>, the pressed menu button, and (once the zh
    catalogue is compiled) the words on the page."""
    assert html_lang(page) == ("zh-CN" if language == "zh_CN" else "en")
    open_menu(page)
    pressed = page.get_attribute(f".lang-switch button[value='{language}']", "aria-pressed")
    other = "en" if language == "zh_CN" else "zh_CN"
    assert pressed == "true"
    assert page.get_attribute(f".lang-switch button[value='{other}']", "aria-pressed") is None
    page.click("details.menu > summary")  # close it again
    heading = page.inner_text("main h1").strip()
    if language == "en":
        assert heading == "Dashboard"
    elif zh_catalogue_compiled():
        assert CJK.search(heading), f"zh dashboard heading is {heading!r}"
    else:
        warnings.warn("zh catalogue not compiled (app/locale/zh_CN/LC_MESSAGES/messages.mo): "
                      "checked <html lang> and the language buttons only", stacklevel=2)


# ---------------------------------------------------------------- (a) language


def test_language_switch_is_remembered_across_sign_in(new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, "quality")
    ensure_language(page, "zh_CN")
    assert_dashboard_language(page, "zh_CN")
    screenshots(page, "lang-quality-dashboard-zh")

    switch_language(page, "en")
    assert page.url.endswith("/dashboard")
    assert_dashboard_language(page, "en")
    screenshots(page, "lang-quality-dashboard-en")

    sign_out(page)
    assert html_lang(page) == "en", "the sign-in page after signing out keeps the language"
    screenshots(page, "lang-login-after-sign-out-en")
    # Forget the browser's language cookie: the choice must come back from the account itself.
    page.context.clear_cookies()
    page.goto("/login")
    assert html_lang(page) == "zh-CN", "a new visitor sees the lab's default language"
    sign_in(page, "quality")
    assert_dashboard_language(page, "en")
    screenshots(page, "lang-quality-dashboard-en-after-sign-in")

    switch_language(page, "zh_CN")
    assert_dashboard_language(page, "zh_CN")
    sign_out(page)
    page.context.clear_cookies()
    sign_in(page, "quality")
    assert_dashboard_language(page, "zh_CN")

    # The switch comes back to the same page with its query (here: a filtered audit trail).
    page.goto("/oversight/audit?actor=quality")
    switch_language(page, "en")
    assert page.url.endswith("/oversight/audit?actor=quality"), page.url
    assert page.input_value("input[name=actor]") == "quality"
    switch_language(page, "zh_CN")
    assert html_lang(page) == "zh-CN"
    assert log.take() == []


# ---------------------------------------------------------------- (b) every role, every page


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_every_role_fits_phone_and_desktop(role, new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, role)
    open_menu(page)
    hrefs = page.eval_on_selector_all("details.menu nav ul a", "els => els.map(a => a.getAttribute('href'))")
    page.click("details.menu > summary")
    assert hrefs[0] == "/dashboard" and "/account" in hrefs, hrefs
    problems: list[str] = []
    for language, short in LANGS.items():
        ensure_language(page, language)
        for viewport in (PHONE, DESKTOP):
            page.set_viewport_size(viewport)
            width = viewport["width"]
            for href in hrefs:
                where = f"{role} {href} {width}px {short}"
                response = page.goto(href)
                if response is None or response.status != 200:
                    problems.append(f"{where}: HTTP {response and response.status}")
                assert html_lang(page) == ("zh-CN" if language == "zh_CN" else "en")
                if width == PHONE["width"]:
                    problems += [f"{where}: {p}" for p in layout_problems(page)]
                else:
                    problems += [f"{where}: {p}" for p in layout_problems(page)
                                 if "horizontal overflow" not in p]
                problems += [f"{where}: {e}" for e in log.take()]
                screenshots(page, f"{role}-{slug(href)}-{width}-{short}")
                if href == "/dashboard":
                    open_menu(page)
                    problems += [f"{where} menu: {p}" for p in menu_problems(page)]
                    screenshots(page, f"{role}-menu-{width}-{short}", full_page=False)
                    page.click("details.menu > summary")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- pages not in the menu


EXTRA_PAGES = [
    ("user", "/scan?code=analyst"),
    ("user-new", "/people/users/new"),
    ("grants", "/people/roles"),
    ("audit-event", "/oversight/audit/1"),
    ("not-found", "/people/users/99999"),
]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360", "1280"])
def test_other_pages_fit(viewport, new_page, screenshots):
    """Pages reached from lists and links (not the menu), plus sign-in and error pages."""
    width = viewport["width"]
    page, log = new_page(viewport)
    problems: list[str] = []
    for language, short in LANGS.items():
        page.context.clear_cookies()
        page.goto(f"/lang/{language}?next=/login")
        assert html_lang(page) == ("zh-CN" if language == "zh_CN" else "en")
        problems += [f"login {width} {short}: {p}" for p in layout_problems(page)]
        screenshots(page, f"login-{width}-{short}")
        page.fill("input[name=username]", "nobody")
        page.fill("input[name=password]", "wrong-password")
        with page.expect_navigation():
            page.click("form[action='/login'] button[type=submit]")
        assert page.locator(".alert.error").is_visible()
        screenshots(page, f"login-error-{width}-{short}")
        log.take()  # the refused sign-in answers 401: the browser logs that, rightly
        sign_in(page, "admin")
        ensure_language(page, language)
        for name, href in EXTRA_PAGES:
            page.goto(href)
            problems += [f"{name} {width} {short}: {p}" for p in layout_problems(page)]
            errors = log.take()
            if name != "not-found":
                problems += [f"{name} {width} {short}: {e}" for e in errors]
            screenshots(page, f"admin-{name}-{width}-{short}")
        # An event that changed a record: before and after side by side.
        page.goto("/oversight/audit?action=user.")
        with page.expect_navigation():
            page.locator("#results tbody a").first.click()
        assert page.locator("table.changes tr.changed").count() >= 1
        problems += [f"audit-event-change {width} {short}: {p}" for p in layout_problems(page)]
        problems += [f"audit-event-change {width} {short}: {e}" for e in log.take()]
        screenshots(page, f"admin-audit-event-change-{width}-{short}")
        page.goto("/scan?code=NOPE-123")
        problems += [f"scan-miss {width} {short}: {p}" for p in layout_problems(page)]
        log.take()  # 404 by design
        screenshots(page, f"admin-scan-miss-{width}-{short}")
        sign_out(page)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- (c) the scan box


def test_scan_box_opens_a_user_or_says_nothing_matches(new_page, screenshots):
    page, log = new_page(PHONE)
    sign_in(page, "admin")
    ensure_language(page, "en")
    box = page.locator("header .scanbox input[name=code]")
    box.fill("analyst")
    with page.expect_navigation():
        box.press("Enter")
    assert re.search(r"/people/users/\d+$", page.url), page.url
    assert "陈晨" in page.inner_text("main h1")
    assert page.inner_text("main hgroup code") == "analyst"
    screenshots(page, "scan-user-360-en")

    # "/" jumps to the scan box from anywhere (keyboard-wedge scanners need no mouse).
    page.locator("main h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.name") == "code"
    page.keyboard.type("NOPE-123")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/scan?code=NOPE-123" in page.url
    message = page.locator("main .alert[role=alert]")
    assert "Nothing matches this barcode" in message.locator("h1").inner_text()
    assert "NOPE-123" in message.inner_text()
    screenshots(page, "scan-miss-360-en")
    # The only console error allowed is the browser noting the 404 status of that page.
    assert all("404" in e for e in log.take())


# ---------------------------------------------------------------- (d) htmx form errors


def test_new_user_error_shows_in_messages_without_reload(new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, "admin")
    ensure_language(page, "en")
    page.goto("/people/users/new")
    page.evaluate("window.__sameDocument = true")
    page.fill("input[name=username]", "e2e-short-pw")
    page.fill("input[name=display_name_zh]", "测试员")
    page.fill("input[name=display_name_en]", "Test Person")
    page.fill("input[name=password]", "short")
    page.select_option("select[name=language]", "en")
    submit = page.locator("main form button[type=submit]")

    # The browser's own check stops a too-short password before anything is sent.
    requests: list[str] = []
    page.on("request", lambda r: r.method == "POST" and requests.append(r.url))
    submit.click()
    assert page.evaluate("document.querySelector('input[name=password]').validity.tooShort")
    assert requests == []

    # A client that skips that check (old browser, script) gets the server's refusal, swapped
    # into #messages by htmx: same document, typed values kept.
    page.evaluate("document.querySelector('main form').noValidate = true")
    with page.expect_response(lambda r: r.url.endswith("/people/users") and r.request.method == "POST") as answer:
        submit.click()
    assert answer.value.status == 422
    alert = page.locator("#messages .alert.error")
    alert.wait_for()
    assert alert.get_attribute("data-code") == "weak_password"
    assert "password" in alert.inner_text().lower()
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert page.url.endswith("/people/users/new")
    assert page.input_value("input[name=username]") == "e2e-short-pw"
    assert page.input_value("input[name=display_name_zh]") == "测试员"
    assert page.input_value("input[name=display_name_en]") == "Test Person"
    assert page.input_value("select[name=language]") == "en"
    screenshots(page, "admin-user-new-error-1280-en")
    assert all("422" in e for e in log.take())

    # Put it right: the user is created and the browser lands on the new user's page.
    page.fill("input[name=password]", "a-long-enough-password")
    with page.expect_navigation(url=re.compile(r"/people/users/\d+$")):
        submit.click()
    assert page.inner_text("main h1") == "测试员 (Test Person)"
    assert page.locator("#messages .alert").count() == 0
    assert log.take() == []


# ---------------------------------------------------------------- (e) signed audit review


def test_quality_manager_signs_audit_trail_review(new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, "quality")
    ensure_language(page, "en")
    page.goto("/oversight/audit/integrity")
    page.evaluate("window.__sameDocument = true")
    form = page.locator("form.review-form")
    form.locator("input[name=note]").fill("e2e monthly review")
    form.locator("input[name=password]").fill("not-my-password")
    with page.expect_response(lambda r: r.url.endswith("/oversight/audit/review")) as answer:
        form.locator("button[type=submit]").click()
    assert answer.value.status == 403
    alert = page.locator("#messages .alert.error")
    alert.wait_for()
    assert alert.get_attribute("data-code") == "wrong_signing_password"
    assert "Wrong password; nothing was signed." in alert.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    assert form.locator("input[name=note]").input_value() == "e2e monthly review"
    screenshots(page, "quality-integrity-wrong-password-1280-en")
    assert all("403" in e for e in log.take())

    form.locator("input[name=password]").fill("envirolims-demo")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.url.endswith("/oversight/audit/integrity")
    row = page.locator("table tbody tr", has_text="e2e monthly review").first
    signature = row.locator(".signature")
    assert signature.locator("strong").inner_text() == "李静 (Li Jing)"
    text = signature.inner_text()
    assert "reviewed" in text
    stamp = signature.locator("time")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", stamp.inner_text())
    assert stamp.get_attribute("datetime")
    assert signature.locator(".badge.good").is_visible()
    assert row.locator(".badge.good", has_text="verified").is_visible()
    screenshots(page, "quality-integrity-signed-1280-en")
    page.set_viewport_size(PHONE)
    assert layout_problems(page) == []
    screenshots(page, "quality-integrity-signed-360-en")
    assert log.take() == []


# ---------------------------------------------------------------- without JavaScript


def test_pages_work_without_javascript(new_page, screenshots):
    """htmx only enhances: with scripts off, the menu, scan box, language switch, a refused
    form and a signature all still work as plain HTML forms and links."""
    page, log = new_page(PHONE, javascript=False)
    sign_in(page, "quality")
    ensure_language(page, "en")
    box = page.locator("header .scanbox input[name=code]")
    box.fill("NOPE-123")
    with page.expect_navigation():
        box.press("Enter")
    assert "NOPE-123" in page.inner_text("main")
    page.goto("/oversight/audit/integrity")
    form = page.locator("form.review-form")
    form.locator("input[name=note]").fill("e2e review without scripts")
    form.locator("input[name=password]").fill("not-my-password")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.locator("main .alert.error").get_attribute("data-code") == "wrong_signing_password"
    screenshots(page, "nojs-integrity-wrong-password-360-en")
    page.goto("/oversight/audit/integrity")
    form.locator("input[name=note]").fill("e2e review without scripts")
    form.locator("input[name=password]").fill("envirolims-demo")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.url.endswith("/oversight/audit/integrity")
    row = page.locator("table tbody tr", has_text="e2e review without scripts").first
    assert row.locator(".signature strong").inner_text() == "李静 (Li Jing)"
    assert layout_problems(page) == []
    switch_language(page, "zh_CN")
    assert html_lang(page) == "zh-CN"
    sign_out(page)
