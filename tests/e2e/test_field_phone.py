"""A sampling round on the phone, in a real Chromium at 360 x 740 with the GPS allowed and set a
few metres from the site: the sampler opens today's task, types container barcodes into the scan
box (as a keyboard-wedge scanner does) with Enter, records the sampling time and position, enters
a field test; goes offline and keeps working (the page shows what waits to be sent), comes back
online and the queue drains in order; a reload shows everything recorded once. A mistyped barcode
is refused with a clear message beside its entry and discarded. The camera scanner is loaded only
when its button is tapped. Screenshots along the way (tests/e2e/screenshots/field-*.png).

The data is the demo's: today's dispatched tasks of the demo sampler (app/samples/demo.py)."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from PIL import Image

from tests.e2e.conftest import PHONE, sign_in
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

FIELD_METER = "JC-YQ-009"  # the demo's calibrated field meter (pH, DO, EC, WT)
NORTH_25_M = Decimal("0.000225")  # degrees of latitude, about 25 m


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (30, 110, 170)).save(out, "JPEG", quality=80)
    return out.getvalue()


class Round:
    """The sampler's page, with checks after each step."""

    def __init__(self, page, log, screenshots) -> None:
        self.page, self.log, self.screenshots = page, log, screenshots
        self.problems: list[str] = []

    def look(self, name: str, expected_status: int | None = None) -> None:
        """Layout checks, console errors (bar the refusal the step expects) and a screenshot."""
        self.problems += [f"{name}: {p}" for p in layout_problems(self.page)]
        expected = f"the server responded with a status of {expected_status}"
        self.problems += [f"{name}: {e}" for e in self.log.take() if not (expected_status and expected in e)]
        self.screenshots(self.page, f"field-{name}-360")

    def waiting(self) -> int:
        return int(self.page.get_attribute("#queue .count", "data-count") or "0")

    def drained(self) -> None:
        # data-count appears only once the page has read the queue from IndexedDB: right after a
        # reload an empty count must not pass for an empty queue (it once let a test race the drain)
        self.page.wait_for_function(
            "() => document.querySelector('#queue .count').dataset.count === '0'", timeout=20_000)

    def scan(self, code: str) -> None:
        box = self.page.locator("#scan-input")
        box.click()
        self.page.keyboard.type(code, delay=5)  # what a keyboard-wedge scanner sends...
        self.page.keyboard.press("Enter")  # ...ending with Enter
        self.page.wait_for_function(  # the scan is queued (or answered) once the box says so
            "code => (document.querySelector('#scan-form .flash').textContent || '').includes(code)", arg=code)
        focused = self.page.evaluate("() => document.activeElement && document.activeElement.id")
        assert focused == "scan-input", "the scan box must stay focused for the next scan"

    def barcodes(self, sample_no: str | None = None) -> list[str]:
        selector = f"li[data-barcode][data-sample='{sample_no}']" if sample_no else "li[data-barcode]"
        return self.page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.barcode)")


OPEN_TASKS = "a.task-card:not([data-status=completed])"  # the lab demo's fresh round is done already


def pick_task(page) -> str:
    """Today's open task with the most samples (the one carrying the field blank and duplicate)."""
    cards = page.eval_on_selector_all(OPEN_TASKS, "els => els.map(a => a.dataset.task)")
    assert cards, "the demo sampler has no task today (app/samples/demo.py makes today's)"
    best, most = cards[0], -1
    for code in cards:
        page.goto(f"/field/tasks/{code}")
        count = page.locator("section.sample").count()
        open_ = page.locator("#scan-form").count()
        if open_ and count > most:
            best, most = code, count
    return best


def test_a_sampling_round_on_the_phone_survives_going_offline(new_page, screenshots):
    page, log = new_page(PHONE)
    walk = Round(page, log, screenshots)
    sign_in(page, "sampler")
    page.goto("/field")
    page.click("form.lang-links button[value=en]")
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    walk.look("today")

    code = pick_task(page)
    page.goto(f"/field/tasks/{code}")
    latitude, longitude = (Decimal(x) for x in page.inner_text("#site-position").split(","))
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": float(latitude + NORTH_25_M), "longitude": float(longitude),
                                  "accuracy": 8})
    page.reload()
    loaded = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert not any("html5-qrcode" in url for url in loaded), "the camera scanner must load only on demand"
    assert page.evaluate("() => document.activeElement.id") == "scan-input"
    walk.look("task")

    routine = page.get_attribute("section.sample:has(.badge.kind:text-is('Routine sample'))", "data-sample")
    samples = page.eval_on_selector_all("section.sample", "els => els.map(e => e.dataset.sample)")
    all_codes = walk.barcodes()
    online_codes, offline_codes = all_codes[: len(all_codes) // 2], all_codes[len(all_codes) // 2:]
    assert online_codes and offline_codes

    # -- online: scans go straight through
    for barcode in online_codes[:-1]:
        walk.scan(barcode)
    walk.drained()
    page.wait_for_selector(f"li[data-barcode='{online_codes[0]}'].filled")

    # -- a mistyped barcode (wrong check digit): refused beside its entry, fixed and resent
    good = online_codes[-1]
    mistyped = good[:-1] + str((int(good[-1]) + 3) % 10)
    walk.scan(mistyped)
    refused = page.locator("#queue-list li.refused")
    refused.wait_for()
    message = refused.locator(".why").inner_text()
    assert "check digit" in message.lower(), message
    assert refused.locator(".why").get_attribute("data-code") == "wrong_check_digit"
    walk.look("refused-barcode", expected_status=422)
    refused.locator("input[name=barcode]").fill(good)
    refused.locator("button[data-act=resend]").click()
    walk.drained()
    page.wait_for_selector(f"li[data-barcode='{good}'].filled")

    # -- another object's code (a reference-material unit): refused, and discarded
    walk.scan("RM26-00012")
    refused.wait_for()
    assert refused.locator(".why").get_attribute("data-code") in ("not_a_container", "malformed_barcode")
    refused.locator("button[data-act=discard]").click()
    refused.locator("button[data-act=discard]").click()  # the second tap confirms
    walk.drained()
    walk.log.take()  # the browser logs each refused request (422) on its console

    # -- sampling time and GPS position: first from 500 m away (the warning asks for a
    # justification before saving), then from where the sampler really stands
    page.context.set_geolocation({"latitude": float(latitude + 20 * NORTH_25_M), "longitude": float(longitude),
                                  "accuracy": 12})
    page.click("#sampling button[data-locate]")
    far = page.locator("#sampling .fix .warnbox")
    far.wait_for()
    assert 480 <= int(far.get_attribute("data-distance")) <= 520
    assert page.is_visible("#justification") and page.get_attribute("#justification", "required") is not None
    walk.look("gps-far")
    page.context.set_geolocation({"latitude": float(latitude + NORTH_25_M), "longitude": float(longitude),
                                  "accuracy": 8})
    page.click("#sampling button[data-locate]")
    fix = page.locator("#sampling .fix .okbox")
    fix.wait_for()
    assert 15 <= int(fix.get_attribute("data-distance")) <= 35
    assert "±8.0 m" in page.inner_text("#sampling .fix")
    walk.look("gps-fix")
    page.click("#sampling button[type=submit]")
    walk.drained()

    # -- a field test, online
    page.select_option("#test-sample", routine)
    page.select_option("#test-parameter", "pH")
    page.fill("#test-value", "7.46")
    page.fill("#test-instrument", FIELD_METER)
    page.click("#tests button[type=submit]")
    walk.drained()
    # the record on the page is re-read once the queue is empty
    page.wait_for_selector(f"#sample-{routine} dd[data-test='pH']")

    # -- offline: the work goes on, the page shows what waits
    page.context.set_offline(True)
    page.wait_for_selector("#queue.offline")
    for barcode in offline_codes:
        walk.scan(barcode)
    page.select_option("#weather", "cloudy")
    page.fill("#air-temperature", "21.5")
    page.fill("#observations-text", "Water slightly turbid after rain; no odour.")
    page.click("#observations button[type=submit]")
    for parameter, value, unit in (("WT", "18.6", "°C"), ("DO", "8.12", "mg/L"), ("EC", "412", "µS/cm")):
        page.select_option("#test-sample", routine)
        page.select_option("#test-parameter", parameter)
        assert page.input_value("#test-unit") == unit
        page.fill("#test-value", value)
        page.fill("#test-instrument", FIELD_METER)
        page.click("#tests button[type=submit]")
    page.select_option("#photo-sample", routine)
    page.set_input_files("#photo-file", files=[{"name": "site.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
    page.fill("#photo-caption", "Upstream view from the bridge")
    page.click("#photos button[type=submit]")
    expected = len(offline_codes) + len(samples) + 3 + 1  # scans, an observation per sample, tests, photo
    page.wait_for_function(f"() => document.querySelector('#queue .count').dataset.count === '{expected}'")
    assert walk.waiting() == expected
    assert "waiting to be sent" in page.inner_text("#queue .count")
    page.click("#queue-toggle")
    assert page.locator("#queue-list li").count() == expected
    assert page.locator(f"li[data-barcode='{offline_codes[0]}'] .queued").count() == 1
    walk.look("offline-waiting")

    # -- a reload while offline loses nothing (the page itself comes from the server, so reload
    # once the network is back; the queue lives in IndexedDB)
    page.context.set_offline(False)
    page.reload()
    walk.drained()
    page.reload()
    assert walk.waiting() == 0
    for barcode in all_codes:
        assert page.locator(f"li[data-barcode='{barcode}'].filled").count() == 1, barcode
    for parameter in ("pH", "WT", "DO", "EC"):
        assert page.locator(f"#sample-{routine} dd[data-test='{parameter}']").count() == 1
    assert page.locator(f"#sample-{routine} ul.thumbs img").count() == 1
    assert page.locator(f"#sample-{routine} dd[data-gps='ok']").count() == 1
    walk.look("all-sent")

    # -- each entry recorded once: the field-record API of the same session
    record = page.evaluate(f"() => fetch('/api/v1/samples/{routine}/field-record').then(r => r.json())")
    entries = [e for revision in record["revisions"] for e in revision["entries"]]
    kinds = [e["kind"] for e in entries]
    assert kinds.count("field_test") == 4, kinds
    assert kinds.count("sampling") == 1 and kinds.count("observation") == 1, kinds
    assert kinds.count("container") == len(walk.barcodes(routine)), kinds
    assert len({e["client_id"] for e in entries}) == len(entries)

    # -- the routine sample is complete: sign it
    missing = page.locator(f"#sample-{routine} [data-missing]").all_inner_texts()
    assert not missing, missing
    page.fill(f"#password-{routine}", "envirolims-demo")
    with page.expect_navigation():
        page.click(f"#sample-{routine} form.sign button[type=submit]")
    assert f"signed={routine}" in page.url
    assert page.locator(f"#sample-{routine} .badge.good", has_text="signed").count() == 1
    walk.look("signed")
    assert not walk.problems, "\n".join(walk.problems)


def test_the_camera_scanner_is_loaded_only_when_tapped(new_page, screenshots):
    page, log = new_page(PHONE)
    sign_in(page, "sampler")
    page.goto("/field")
    code = page.eval_on_selector_all(OPEN_TASKS, "els => els.map(a => a.dataset.task)")[-1]
    page.goto(f"/field/tasks/{code}")
    assert page.evaluate("() => typeof window.Html5Qrcode") == "undefined"
    page.click("button[data-camera='#scan-input']")
    page.wait_for_function("() => typeof window.Html5Qrcode === 'function'")
    # headless Chromium has no camera: the page says so and the scan box still works
    page.wait_for_selector("#qr-note[data-state=camera_failed]")
    screenshots(page, "field-camera-360")
    page.click("button[data-camera-stop]")
    assert page.is_hidden("#qr-box")
    unexpected = [e for e in log.take() if "html5-qrcode" not in e and "NotFoundError" not in e]
    assert not unexpected, unexpected


def test_the_task_page_in_chinese(new_page, screenshots):
    page, log = new_page(PHONE)
    sign_in(page, "sampler")
    page.goto("/field")
    if page.get_attribute("html", "lang") != "zh-CN":
        page.click("form.lang-links button[value=zh_CN]")
        page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "zh-CN"
    code = page.eval_on_selector_all(OPEN_TASKS, "els => els.map(a => a.dataset.task)")[0]
    page.goto(f"/field/tasks/{code}")
    assert re.search(r"[\u4e00-\u9fff]", page.inner_text("h1"))
    assert layout_problems(page) == []
    assert log.take() == []
    screenshots(page, "field-task-360-zh")


def test_a_lost_answer_and_failed_sends_are_retried_and_a_reload_keeps_the_queue(new_page, screenshots):
    """The first scan reaches the server but its answer is lost (the phone retries: recorded
    once); then the network fails outright: the scans wait, survive a reload (IndexedDB) and are
    sent when it works again."""
    page, log = new_page(PHONE)
    walk = Round(page, log, screenshots)
    sign_in(page, "sampler")
    page.goto("/field")
    cards = page.eval_on_selector_all(OPEN_TASKS, "els => els.map(a => a.dataset.task)")
    code = cards[1] if len(cards) > 2 else cards[-1]
    page.goto(f"/field/tasks/{code}")
    codes = walk.barcodes()
    assert len(codes) >= 3

    lost: list[str] = []

    def lose_the_answer(route):
        if not lost:
            route.fetch()  # the server records it...
            lost.append(route.request.post_data or "")
            route.abort("connectionreset")  # ...but the phone never hears back
        else:
            route.continue_()

    page.route("**/field/entries", lose_the_answer)
    walk.scan(codes[0])
    walk.drained()
    assert lost, "the first send was not intercepted"
    page.unroute("**/field/entries")

    failed: list[str] = []

    def no_network(route) -> None:
        failed.append(route.request.url)
        route.abort("internetdisconnected")

    page.route("**/field/entries", no_network)
    for barcode in codes[1:3]:
        walk.scan(barcode)
    page.wait_for_function("() => document.querySelector('#queue .count').dataset.count === '2'")
    assert failed, "the sends did not fail"
    page.reload()
    page.wait_for_function("() => document.querySelector('#queue .count').dataset.count === '2'")
    walk.screenshots(page, "field-retrying-360")
    page.unroute("**/field/entries")
    page.click("#queue-send")
    walk.drained()
    page.reload()
    for barcode in codes[:3]:
        assert page.locator(f"li[data-barcode='{barcode}'].filled").count() == 1, barcode
    sample = page.get_attribute(f"li[data-barcode='{codes[0]}']", "data-sample")
    record = page.evaluate(f"() => fetch('/api/v1/samples/{sample}/field-record').then(r => r.json())")
    scans = [e["details"].get("barcode") for r in record["revisions"] for e in r["entries"] if e["kind"] == "container"]
    assert sorted(scans) == sorted(b for b in codes[:3] if b in walk.barcodes(sample)), scans
    assert scans.count(codes[0]) == 1
    unexpected = [e for e in log.take() if "Failed to load resource" not in e]
    assert not unexpected, unexpected


def test_scanning_works_without_javascript(new_page, screenshots):
    """Without scripts the scan box is a plain form: the scan is recorded and the page comes
    back with the container filled; a bad code comes back with its message."""
    page, log = new_page(PHONE, javascript=False)
    sign_in(page, "sampler")
    page.goto("/field")
    code = page.eval_on_selector_all(OPEN_TASKS, "els => els.map(a => a.dataset.task)")[-1]
    page.goto(f"/field/tasks/{code}")
    barcode = page.eval_on_selector_all("li[data-barcode]:not(.filled)", "els => els.map(e => e.dataset.barcode)")[0]
    page.fill("#scan-input", barcode)
    with page.expect_navigation():
        page.press("#scan-input", "Enter")
    assert page.locator(f"li[data-barcode='{barcode}'].filled").count() == 1
    page.fill("#scan-input", "RM26-00001")
    with page.expect_navigation():
        page.press("#scan-input", "Enter")
    assert page.get_attribute("#messages .alert.error", "data-code") == "not_a_container"
    assert layout_problems(page) == []
    screenshots(page, "field-nojs-refused-360")
