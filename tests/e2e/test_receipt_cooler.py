"""A cooler received at the lab door, as the custodian does it, in a real Chromium: open a delivery
for the cooler the lab demo leaves at the door (this morning's round: a routine sample, a field
blank and a field duplicate, sampled three hours before the demo was loaded, so every clock has
time left),
scan the containers by typing into the scan box with Enter (a keyboard-wedge scanner), one
mistyped code refused beside the box, one container left in the cooler and listed as missing;
accept one sample, accept one with conditions (deviation and the client's consent), reject one
with a reason, sign with the password. Screenshots: receipt-scan-1280.png, receipt-missing-360.png,
receipt-signed-1280.png (tests/e2e/screenshots/).

The data is the demo's (app/samples/lab_demo.py, `_fresh_cooler`)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import DEMO_PASSWORD, DESKTOP, PHONE, sign_in
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e


def to_english(page) -> None:
    page.click("details.menu > summary")
    with page.expect_navigation():
        page.click("form.lang-switch button[value=en]")
    assert page.get_attribute("html", "lang") == "en"


def pick_cooler(page) -> str:
    """The newest cooler handed over and waiting at the door (listed first)."""
    page.goto("/receipts/new")
    found = page.eval_on_selector_all("a[data-shipment]", "els => els.map(a => a.dataset.shipment)")
    assert found, "no cooler waits to be received (the lab demo leaves this morning's at the door)"
    return found[0]


def scan(page, code: str, expect: str) -> None:
    box = page.locator("#scan-input")
    box.click()
    page.keyboard.type(code, delay=5)  # what a keyboard-wedge scanner sends...
    page.keyboard.press("Enter")  # ...ending with Enter
    page.wait_for_function(
        "([code, expect]) => { const r = document.querySelector('#scan-result'); return r && "
        "r.textContent.includes(code.toUpperCase()) && r.querySelector(expect); }", arg=[code, expect])
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'scan-input'")


def decide(page, sample_no: str, decision: str, **fields: str) -> None:
    card = page.locator(f"article.sample-card[data-sample='{sample_no}']")
    form = card.locator("form")
    form.locator(f"input[name=decision][value={decision}]").check()
    for name, value in fields.items():
        target = form.locator(f"[name={name}]")
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_selector(f"article.sample-card[data-sample='{sample_no}'] [data-decision='{decision}']")


def test_a_cooler_received_scanned_checked_decided_and_signed(new_page, screenshots):
    page, log = new_page(DESKTOP)
    problems: list[str] = []
    sign_in(page, "custodian")
    to_english(page)
    cooler = pick_cooler(page)
    page.goto(f"/receipts/new?code={cooler}")
    assert page.input_value("form.receipt-open input[name=code]") == cooler
    page.fill("form.receipt-open input[name=cooler_temp]", "5.5")
    page.fill("form.receipt-open input[name=seal_no]", "F-0419")
    page.select_option("select[name=seal_intact]", "yes")
    with page.expect_navigation():
        page.click("form.receipt-open button[type=submit]")
    assert "/receipts/RC" in page.url
    assert page.evaluate("() => document.activeElement.id") == "scan-input"  # ready for the scanner

    samples = page.eval_on_selector_all("article.sample-card", "els => els.map(e => e.dataset.sample)")
    assert len(samples) >= 3, f"cooler {cooler} has {len(samples)} samples; the demo's rounds carry three"
    accepted, conditional, rejected = samples[:3]
    barcodes = {s: page.eval_on_selector_all(f"article.sample-card[data-sample='{s}'] li[data-barcode]",
                                             "els => els.map(e => e.dataset.barcode)") for s in samples}
    left_in_cooler = barcodes[rejected][-1]
    to_scan = [b for s in samples for b in barcodes[s] if b != left_in_cooler]

    # -- scanning: each code typed and Enter; one mistyped code refused beside the box
    scan(page, to_scan[0], "[data-scan=expected]")
    mistyped = to_scan[1][:-1] + str((int(to_scan[1][-1]) + 3) % 10)
    scan(page, mistyped, ".alert.error[data-code=wrong_check_digit]")
    assert "check digit" in page.inner_text("#scan-result").lower()
    for barcode in to_scan[1:]:
        scan(page, barcode, "[data-scan=expected]")
    scan(page, to_scan[0].lower(), "[data-scan=repeat]")  # scanned twice: harmless, kept once
    assert page.get_attribute(".tally", "data-scanned") == str(len(to_scan))
    missing = page.eval_on_selector_all("#missing li[data-barcode]", "els => els.map(e => e.dataset.barcode)")
    assert missing == [left_in_cooler]
    problems += [f"scan-1280: {p}" for p in layout_problems(page)]
    screenshots(page, "receipt-scan-1280")

    # -- the phone-sized view of what is missing
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.is_visible(f"#missing li[data-barcode='{left_in_cooler}']")
    problems += [f"missing-360: {p}" for p in layout_problems(page)]
    screenshots(page, "receipt-missing-360")
    page.set_viewport_size(DESKTOP)
    page.reload()

    # -- checks and decisions
    decide(page, accepted, "accept", arrival_temp="5.5", preservation_ok="yes", preservation_note="pH 1.5 (strip)",
           container_intact="yes", volume_sufficient="yes", label_legible="yes")
    form = page.locator(f"article.sample-card[data-sample='{conditional}'] form")
    form.locator("input[name=decision][value=accept_with_conditions]").check()
    form.locator("textarea[name=deviation]").fill("Arrived at 9 °C, above 0–4 °C")
    form.locator("button[type=submit]").click()  # the consent forgotten: refused in the card
    page.wait_for_selector(f"article.sample-card[data-sample='{conditional}'] "
                           ".alert.error[data-code=receipt_consent_required]")
    assert "Arrived at 9 °C" in page.input_value(
        f"article.sample-card[data-sample='{conditional}'] textarea[name=deviation]")
    decide(page, conditional, "accept_with_conditions", arrival_temp="9", deviation="Arrived at 9 °C, above 0–4 °C",
           consent_by="Client: Wang Gong (江城化工)", consent_ref="Phone call 10:02, note 17")
    decide(page, rejected, "reject", container_intact="no", reject_reason="Cap cracked, sample leaked in the cooler")

    # -- signing: a wrong password first, then the right one
    page.fill("#sign input[name=password]", "not-my-password")
    page.click("#sign button[type=submit]")
    page.wait_for_selector("#sign .alert.error[data-code=wrong_signing_password]")
    page.fill("#sign input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("#sign button[type=submit]")
    page.wait_for_selector("[data-delivery-state=signed]")
    assert page.locator("#scan-input").count() == 0
    states = {s: page.get_attribute(f"article.sample-card[data-sample='{s}'] [data-state]", "data-state")
              for s in (accepted, conditional, rejected)}
    assert states == {accepted: "received", conditional: "conditionally_received", rejected: "rejected"}
    assert page.is_visible(f"#missing li[data-barcode='{left_in_cooler}']")
    assert page.locator(".receipt-signed .signature.intact").count() == 1
    problems += [f"signed-1280: {p}" for p in layout_problems(page)]
    screenshots(page, "receipt-signed-1280")

    # -- the sample's page carries the deviation and the consent
    page.goto(f"/samples/{conditional}")
    assert "Arrived at 9 °C" in page.inner_text("#receipt") and "Phone call 10:02" in page.inner_text("#receipt")

    errors = [e for e in log.take() if "status of 422" not in e and "status of 403" not in e]
    assert not errors, errors
    assert not problems, problems
