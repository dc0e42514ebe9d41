"""The instrument registry in a real browser, as the technical manager uses it: register an
instrument (a refusal first, nothing typed lost), find it in the list by live search, open it;
the demo instruments' detail and traceability pages at phone and desktop width in both languages;
and registration without JavaScript."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import DESKTOP, PHONE, ensure_language, sign_in
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

# Raw message ids or template names on a page mean a string escaped translation or a macro broke.
RAW = re.compile(r"\b(in_service|due_soon|out_of_service|not_calibrated|failed_check|instrument\.\w+)\b")


def visible_text(page) -> str:
    return page.inner_text("main")


def check_page(page, log, where: str, phone: bool) -> list[str]:
    problems = [f"{where}: {p}" for p in layout_problems(page)
                if phone or "horizontal overflow" not in p]
    problems += [f"{where}: {e}" for e in log.take()]
    raw = RAW.findall(visible_text(page))
    if raw:
        problems.append(f"{where}: raw keys on the page: {sorted(set(raw))}")
    return problems


def fill_registration(page, asset_no: str) -> None:
    page.fill("input[name=asset_no]", asset_no)
    page.fill("input[name=name_zh]", "紫外可见分光光度计")
    page.fill("input[name=name_en]", "UV-Vis spectrophotometer")
    page.fill("input[name=model]", "UV-1900i")
    page.fill("input[name=manufacturer]", "岛津 Shimadzu")
    page.fill("input[name=serial_no]", "A12345-E2E")
    page.fill("input[name=location]", "理化室 202")
    page.fill("input[name=commissioned_on]", "2024-03-01")
    page.fill("textarea[name=uses]", "NH3-N | HJ 535-2009\nTP | GB 11893-89")


def test_the_technical_manager_registers_an_instrument_and_finds_it(new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, "technical")
    ensure_language(page, "en")
    problems: list[str] = []

    page.goto("/instruments")
    assert page.locator("#results tbody tr").count() >= 9  # the demo instruments
    problems += check_page(page, log, "list", phone=False)
    screenshots(page, "instruments-list-1280-en")

    page.click("a[href='/instruments/new']")
    page.wait_for_url("**/instruments/new")
    fill_registration(page, "JC-YQ-001")  # the demo UV-Vis already has this number
    page.click("#registry-form button[type=submit]")
    page.wait_for_selector("#registry-form .alert.error")
    assert "already registered" in page.inner_text("#registry-form .alert.error")
    assert page.input_value("input[name=location]") == "理化室 202"  # nothing typed is lost
    assert "HJ 535-2009" in page.input_value("textarea[name=uses]")
    log.take()  # the browser reports the 409 of the refused post, rightly
    problems += check_page(page, log, "new with error", phone=False)
    screenshots(page, "instruments-new-error-1280-en")

    page.fill("input[name=asset_no]", "JC-E2E-101")
    with page.expect_navigation(url=re.compile(r"/instruments/JC-E2E-101$")):
        page.click("#registry-form button[type=submit]")
    assert page.inner_text("main h1").strip() == "UV-Vis spectrophotometer"
    assert page.locator(".instrument-head [data-status=overdue]").is_visible()  # not calibrated yet
    assert "never calibrated" in visible_text(page)
    problems += check_page(page, log, "detail", phone=False)
    screenshots(page, "instruments-detail-new-1280-en")

    # an attachment through htmx (multipart), then out of service after the confirmation dialog
    page.click("#attachments details.action-panel > summary")
    page.fill("#attachments input[name=title]", "Operating manual")
    page.set_input_files("#attachments input[name=file]", files=[{
        "name": "manual.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF\n"}])
    with page.expect_navigation(url=re.compile(r"/instruments/JC-E2E-101$")):
        page.click("#attachments button[type=submit]")
    assert page.locator("#attachments a[href^='/instruments/attachments/']").inner_text() == "Operating manual"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#service details.action-panel > summary >> nth=0")
    page.fill("#service form[action$='/out-of-service'] input[name=reason]", "Lamp energy unstable")
    with page.expect_navigation(url=re.compile(r"/instruments/JC-E2E-101$")):
        page.click("#service form[action$='/out-of-service'] button[type=submit]")
    assert page.locator(".instrument-head [data-status=out_of_service]").is_visible()
    assert "Lamp energy unstable" in page.inner_text("ol.timeline")
    problems += check_page(page, log, "detail after changes", phone=False)
    screenshots(page, "instruments-detail-out-of-service-1280-en")

    from playwright.sync_api import expect  # here: without Playwright the e2e tests skip, not fail to import

    page.goto("/instruments")
    page.fill("form.instrument-filters input[name=q]", "e2e-1")
    expect(page.locator("#results tbody tr")).to_have_count(1)  # htmx swapped the results in
    assert "JC-E2E-101" in page.inner_text("#results")
    assert "q=e2e-1" in page.url  # the search is in the address bar (back button, sharing)
    screenshots(page, "instruments-list-search-1280-en")
    with page.expect_navigation(url=re.compile(r"/instruments/JC-E2E-101$")):
        page.click("#results a[href='/instruments/JC-E2E-101'] >> nth=0")

    page.set_viewport_size(PHONE)
    for name, url in (("list", "/instruments"), ("new", "/instruments/new"), ("detail", "/instruments/JC-E2E-101"),
                      ("edit", "/instruments/JC-E2E-101/edit"),
                      ("traceability", "/instruments/JC-E2E-101/traceability")):
        page.goto(url)
        problems += check_page(page, log, f"{name} 360", phone=True)
        screenshots(page, f"instruments-{name}-360-en")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_demo_instruments_with_their_history_fit_phone_and_desktop(language, new_page, screenshots):
    page, log = new_page(DESKTOP)
    sign_in(page, "technical")
    ensure_language(page, language)
    short = "zh" if language == "zh_CN" else "en"
    problems: list[str] = []
    statuses = set()
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        width = viewport["width"]
        page.goto("/instruments")
        statuses |= set(page.eval_on_selector_all("#results [data-status]", "els => els.map(e => e.dataset.status)"))
        problems += check_page(page, log, f"list {width}", phone=width == PHONE["width"])
        screenshots(page, f"instruments-demo-list-{width}-{short}")
        for asset_no in ("JC-YQ-001", "JC-YQ-003", "JC-YQ-005"):
            for suffix, name in (("", "detail"), ("/traceability", "traceability")):
                page.goto(f"/instruments/{asset_no}{suffix}")
                assert page.locator("main h1").is_visible()
                problems += check_page(page, log, f"{asset_no} {name} {width}", phone=width == PHONE["width"])
                screenshots(page, f"instruments-{asset_no}-{name}-{width}-{short}")
    assert {"in_service", "due_soon", "overdue", "out_of_service"} <= statuses, statuses
    page.set_viewport_size(DESKTOP)
    page.goto("/instruments/JC-YQ-001")
    assert page.locator("ol.timeline li.tl-calibration").count() >= 2
    assert page.locator("ol.timeline .signature.intact").count() >= 2
    page.goto("/instruments/JC-YQ-003")  # out of service after a failed check: its impact assessment is open
    assert page.locator(".instrument-head [data-status=out_of_service]").is_visible()
    assert page.locator(".alert.warning a[href^='/instruments/impact/']").count() == 1
    assert not problems, "\n".join(problems)


def test_registering_works_without_javascript(new_page, screenshots):
    page, log = new_page(DESKTOP, javascript=False)
    sign_in(page, "technical")
    ensure_language(page, "en")
    page.goto("/instruments/new")
    fill_registration(page, "JC-E2E-202")
    page.fill("input[name=commissioned_on]", "2999-01-01")
    page.click("#registry-form button[type=submit]")  # the browser's own form post
    page.wait_for_selector(".alert.error")
    assert "cannot be after today" in page.inner_text(".alert.error")
    assert page.input_value("input[name=asset_no]") == "JC-E2E-202"
    screenshots(page, "instruments-new-error-nojs-1280-en")
    log.take()
    page.fill("input[name=commissioned_on]", "2023-05-01")
    with page.expect_navigation(url=re.compile(r"/instruments/JC-E2E-202$")):
        page.click("#registry-form button[type=submit]")
    assert "JC-E2E-202" in page.inner_text(".instrument-head")
    # live search falls back to the plain form
    page.goto("/instruments")
    page.fill("form.instrument-filters input[name=q]", "e2e-2")
    with page.expect_navigation():
        page.click("form.instrument-filters button[type=submit]")
    assert page.locator("#results tbody tr").count() == 1
    assert log.take() == []
