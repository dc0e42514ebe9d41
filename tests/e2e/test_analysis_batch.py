"""An analysis batch run in a real Chromium, as the analyst does it (issue 8 "Done when").

The demo analyst builds an ICP-MS metals batch (HJ 700-2014, Cu/Zn/Pb/Cd, direct reading: no
curve) from three samples the demo leaves due with time on their clocks, scans the standards the
worksheet asks for (the materials demo's SRM 1640a tenfold dilution as CRM, its metals
intermediate solution as CCV and spike), starts it, imports a MassHunter batch table built here
for the batch's labels (the calibration rows and a rinse are listed as not imported), pastes two
rows copied from a spreadsheet, types the last sample and the QC by keyboard (Tab right, Enter
down; each cell posts alone through htmx and only that cell changes, no reload). The spike reads
60 % recovery (HJ 700-2014 here: 70–130 %): the QC page shows the failure, signing is refused in
the page with the reason, the analyst records a justified "S" qualifier and signs with the
password; the batch is submitted and the signature shows. Then the NH3-N spike-recovery control
chart of the demo month and an NH3-N calibration curve, in English.

Layout checks at desk (and phone) width on every look, no console errors but the expected
refusals. Screenshots in tests/e2e/screenshots/analysis-*.png."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.analysis import batches, methods
from app.analysis.demo import ICPMS, METALS_INTERMEDIATE, METALS_METHOD, SRM_DILUTION
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, CorrectiveAction
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.reference_materials.models import StandardSolution
from tests.e2e.conftest import DEMO_PASSWORD, DESKTOP, PHONE, ensure_language, sign_in
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

D = Decimal
METALS = ("Cu", "Zn", "Pb", "Cd")
SPIKE_ADDED = "10.0"  # μg/L of Cu from the metals intermediate solution
CRM_VALUE, CRM_U = "8.57", "0.43"  # SRM 1640a diluted ten times (app.analysis.demo)
# what the ICP-MS reads (μg/L): a sample's Cu, Zn, Pb, Cd
SAMPLE_READS = ({"Cu": "2.314", "Zn": "6.08", "Pb": "0.523", "Cd": "0.061"},
                {"Cu": "1.872", "Zn": "9.41", "Pb": "1.107", "Cd": "0.094"},
                {"Cu": "2.100", "Zn": "4.77", "Pb": "0.388", "Cd": "0.072"})
DUPLICATE_READ = {"Cu": "1.851", "Zn": "9.52", "Pb": "1.096", "Cd": "0.092"}
BLANK_READ = {"Cu": "0.012", "Zn": "0.105", "Pb": "0.008", "Cd": "0.003"}  # below each MDL
SPIKED_CU = "8.100"  # (8.100 - 2.100) / 10.0 = 60 % recovery: fails 70–130 %


@pytest.fixture(scope="module")
def bench(server_db) -> dict:
    """Three samples due for the metals with at least six hours left on every clock, and the
    barcodes of the standards the materials demo prepared for today's ICP-MS work."""
    with server_db.reading() as session:
        version = methods.version_in_force(session, methods.get_method(session, METALS_METHOD).id, utcnow())
        soon = utcnow() + timedelta(hours=6)
        due = [d for d in batches.due_samples(session, version, list(METALS), limit=100)
               if set(METALS) <= set(d.parameters) and d.first_deadline and d.first_deadline > soon]
        assert len(due) >= 3, "the demo leaves no three metals samples due (app/samples/lab_demo.py)"
        barcodes = {name: session.scalars(select(StandardSolution.barcode).where(StandardSolution.name == name)).one()
                    for name in (SRM_DILUTION, METALS_INTERMEDIATE)}
        samples = [d.sample.sample_no for d in due[:3]]
    return {"samples": samples, "crm": barcodes[SRM_DILUTION], "metals": barcodes[METALS_INTERMEDIATE]}


def look(page, log, problems: list[str], name: str, *, widths=(DESKTOP, PHONE)) -> None:
    """Layout at each width (horizontal overflow only counts on the phone, where it means a
    page wider than the screen), and the console since the last look."""
    for viewport in widths:
        page.set_viewport_size(viewport)
        found = layout_problems(page)
        if viewport["width"] != PHONE["width"]:
            found = [p for p in found if "horizontal overflow" not in p]
        problems += [f"{name} {viewport['width']}px: {p}" for p in found]
    page.set_viewport_size(DESKTOP)
    problems += [f"{name}: {e}" for e in log.take()]


def shot(page, screenshots, name: str) -> None:
    """A full-page screenshot from the top (the sticky header and menu drawn where they belong)."""
    page.evaluate("window.scrollTo(0, 0); document.querySelectorAll('.table-wrap').forEach(w => w.scrollLeft = 0)")
    screenshots(page, name)


def expect_refusal_logged(log, status: str) -> None:
    """A refused form answers with its 4xx status: Chromium logs that load; nothing else."""
    errors = log.take()
    assert errors and all(status in e for e in errors), errors


def masshunter_csv(labels: dict[str, str], started, tz) -> bytes:
    """A MassHunter 4.x batch table (two header rows) as the ICP-MS exports it: calibration rows
    first (not positions of the batch), then the batch's positions by label, and a rinse."""
    channels = (("63", "Cu"), ("66", "Zn"), ("111", "Cd"), ("208", "Pb"))
    head = ["Sample", "", "", "", "", ""]
    columns = ["Data File", "Acq. Date-Time", "Type", "Level", "Sample Name", "Dil."]
    for mass, element in channels:
        head += [f"{mass}  {element}  [ He ]", "", "", ""]
        columns += ["CPS", "CPS RSD", "Conc. [ ppb ]", "Conc. RSD"]
    head += ["115  In  [ He ]", ""]
    columns += ["CPS", "CPS RSD"]
    rows = [("CalBlk", "1", "Cal Blank", {e: "0.000" for e in METALS}),
            *[("CalStd", str(n + 2), f"Std {level} ppb", {e: level for e in METALS})
              for n, level in enumerate(("1", "5", "10", "50", "100"))],
            ("Sample", "", labels["CB1"], BLANK_READ), ("Sample", "", labels["BLK1"], BLANK_READ),
            ("Sample", "", labels["BLK2"], {**BLANK_READ, "Cu": "0.015"}),
            ("Sample", "", labels["CRM1"], {"Cu": "8.49"}),
            ("Sample", "", labels["S1"], SAMPLE_READS[0]),
            ("Sample", "", "Rinse", {e: "0.002" for e in METALS})]
    lines = [",".join(head), ",".join(columns)]
    moment = started + timedelta(seconds=15)
    for n, (kind, level, name, values) in enumerate(rows, start=1):
        cells = [f"{n:03d}{'SMPL' if kind == 'Sample' else 'CALS'}.d", f"{moment.astimezone(tz):%Y/%m/%d %H:%M:%S}",
                 kind, level, name, "1"]
        for _, element in channels:
            value = values.get(element)
            cells += ["", "", "", ""] if value is None else [f"{D(value) * 1800 + 25:.2f}", "1.2", value, "1.8"]
        cells += ["251034.5", "0.9"]
        lines.append(",".join(cells))
        moment += timedelta(seconds=10)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def cell_input(page, label: str, parameter: str, kind: str = "reading"):
    """The reading (or dilution) input of a position × parameter in the entry grid."""
    column = METALS.index(parameter) * 2 + (1 if kind == "dilution" else 0)
    return page.locator(f"table.entry-grid tr:has(th code:text-is('{label}')) input[data-entry-col='{column}']")


def type_cell(page, label: str, parameter: str, value: str, key: str) -> str:
    """Type into a focused cell and leave it with `key` (Tab or Enter): the cell posts alone
    (htmx) and comes back with its computed value; returns the element focused afterwards."""
    box = cell_input(page, label, parameter)
    assert page.evaluate("document.activeElement && document.activeElement.name") == box.get_attribute("name")
    page.keyboard.type(value, delay=15)
    td = box.evaluate("e => e.closest('td').id")
    with page.expect_response(lambda r: r.url.endswith("/entry/cell") and r.request.method == "POST") as answer:
        page.keyboard.press(key)
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector(f"#{td} [data-saved]")
    # htmx settles the swapped cell (20 ms) and entry.js puts the focus back where the key sent it
    page.wait_for_function("() => document.activeElement && document.activeElement.name")
    return page.evaluate("document.activeElement.name")


def test_an_analyst_runs_an_icpms_batch(new_page, screenshots, server_db, bench):
    problems: list[str] = []
    page, log = new_page(DESKTOP)
    sign_in(page, "analyst")
    ensure_language(page, "zh_CN")  # the language is the user's: another walk may have left it in English

    # ---- build: the method, its parameters, the samples due (earliest deadline first)
    page.goto("/batches/new")
    page.select_option("#method-form select[name=method]", METALS_METHOD)
    with page.expect_navigation():
        page.click("#method-form button[type=submit]")
    page.uncheck("#method-form input[name=parameters][value=As]")  # these samples ask for Cu, Zn, Pb, Cd
    with page.expect_navigation():
        page.click("#method-form button[type=submit]")
    for sample_no in bench["samples"]:
        page.check(f"#due tr[data-sample='{sample_no}'] input[name=samples]")
    assert page.is_checked(f"#instrument input[name=instrument][value='{ICPMS}']")
    page.fill("#build-form input[name=note]", "e2e：ICP-MS 重金属（Cu、Zn、Pb、Cd）")
    shot(page, screenshots, "analysis-build-1280-zh")
    look(page, log, problems, "build")
    with page.expect_navigation():
        page.click("#build-form button[type=submit]")
    batch_no = page.url.rstrip("/").split("/")[-1].split("#")[0]
    assert batch_no.startswith("AB"), page.url
    assert page.get_attribute("[data-state]", "data-state") == "open"

    # ---- the worksheet asks for the standards: scan them (the scanner types and sends Enter)
    assert page.locator("#missing-standards").count() == 1
    roles = page.eval_on_selector_all("table.worksheet tbody tr", "rows => rows.map(r => r.dataset.role)")
    assert roles == ["calibration_blank", "method_blank", "method_blank", "crm", "sample", "sample", "duplicate",
                     "sample", "spike", "ccv"], roles
    names = page.eval_on_selector_all("table.worksheet tbody tr td:nth-child(2) code",
                                      "cs => cs.map(c => c.textContent)")
    label = {"CB1": names[0], "BLK1": names[1], "BLK2": names[2], "CRM1": names[3], "S1": names[4], "S2": names[5],
             "S2D": names[6], "S3": names[7], "S3SP": names[8], "CCV1": names[9]}
    assert sorted([label["S1"], label["S2"], label["S3"]]) == sorted(bench["samples"]), names
    for role, barcode, fields in (("crm", bench["crm"], {"expected_value": CRM_VALUE, "expected_uncertainty": CRM_U}),
                                  ("ccv", bench["metals"], {"expected_value": "100"}),
                                  ("spike", bench["metals"], {"spike_added": SPIKE_ADDED})):
        form = page.locator("#standards form")
        form.locator("select[name=target]").select_option(role)
        for name, value in fields.items():
            form.locator(f"input[name={name}]").fill(value)
        form.locator("input[name=barcode]").click()
        page.keyboard.type(barcode, delay=5)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator(".alert.error").count() == 0, page.inner_text(".alert.error")
        if role == "crm":
            shot(page, screenshots, "analysis-worksheet-standards-1280-zh")
            look(page, log, problems, "worksheet with standards missing")
    assert page.locator("#missing-standards").count() == 0
    assert page.locator("tr[data-role=crm] a[href*='/reference-materials/items/']").inner_text() == bench["crm"]
    assert "+10.0" in page.inner_text("tr[data-role=spike]")

    # ---- start now: the gates pass, the samples are in analysis
    with page.expect_navigation():
        page.click("#start button[type=submit]")
    assert page.get_attribute("[data-state]", "data-state") == "running"
    shot(page, screenshots, "analysis-worksheet-running-1280-zh")
    look(page, log, problems, "worksheet running")

    # ---- import the instrument's batch table
    with server_db.reading() as session:
        batch = session.scalars(select(AnalysisBatch).where(AnalysisBatch.batch_no == batch_no)).one()
        started, tz = batch.started_at, lab_calendar(session).tz
    content = masshunter_csv(label, started, tz)
    page.click(f"nav.batch-links a[href='/batches/{batch_no}/import']")
    page.wait_for_selector("#import-form")
    page.select_option("#import-form select[name=profile]", "AGILENT-ICPMS")
    page.set_input_files("#import-form input[name=file]", files=[
        {"name": f"{batch_no}_metals_batch.csv", "mimeType": "text/csv", "buffer": content}])
    with page.expect_navigation():
        page.click("#import-form button[type=submit]")
    assert "/imports/" in page.url, page.url
    # five positions × their channels: CB1, BLK1, BLK2 and S1 four each, CRM1 Cu only
    assert page.get_attribute("[data-imported]", "data-imported") == "17"
    unmatched = page.eval_on_selector_all("table.unmatched tbody tr", "rows => rows.map(r => r.dataset.reason)")
    assert len(unmatched) == 7 * 4 and set(unmatched) == {"position_not_found"}, unmatched  # 6 calibration + rinse
    assert "Rinse" in page.inner_text("table.unmatched")
    shot(page, screenshots, "analysis-import-outcome-1280-zh")
    look(page, log, problems, "import outcome")

    # ---- the grid: a block pasted from a spreadsheet (S2 and its duplicate, reading/dilution pairs)
    page.goto(f"/batches/{batch_no}/entry")
    assert cell_input(page, label["S1"], "Cu").input_value() == SAMPLE_READS[0]["Cu"]  # imported
    page.evaluate("window.__sameDocument = true")
    block = "\n".join("\t\t".join(reads[p] for p in METALS) for reads in (SAMPLE_READS[1], DUPLICATE_READ))
    target = cell_input(page, label["S2"], "Cu")
    target.click()
    with page.expect_response(lambda r: r.url.endswith("/entry/paste") and r.request.method == "POST") as answer:
        target.evaluate("(input, text) => { const data = new DataTransfer(); data.setData('text/plain', text);"
                        " input.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true,"
                        " cancelable: true})); }", block)
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_function(
        "([label, value]) => { const row = [...document.querySelectorAll('table.entry-grid tbody tr')]"
        ".find(r => r.querySelector('th code').textContent === label);"
        " return row && row.querySelector('input[data-entry-col=\"2\"]').value === value; }",
        arg=[label["S2D"], DUPLICATE_READ["Zn"]])
    assert page.evaluate("window.__sameDocument === true"), "the paste reloaded the page"
    assert page.locator(".alert.error").count() == 0

    # ---- by keyboard: S3 across (Tab, Tab: past the dilution), then the spike and the CCV (Enter: down)
    page.evaluate("document.querySelectorAll('table.entry-grid td.entry-cell').forEach(td => td.dataset.probe = '1')")
    cell_input(page, label["S3"], "Cu").click()
    for n, parameter in enumerate(METALS):
        after = type_cell(page, label["S3"], parameter, SAMPLE_READS[2][parameter], "Tab")
        assert after == cell_input(page, label["S3"], parameter, "dilution").get_attribute("name")
        if n < len(METALS) - 1:
            page.keyboard.press("Tab")
    # only the four cells typed were replaced; every other cell is the same element as before
    replaced = page.eval_on_selector_all("table.entry-grid td.entry-cell:not([data-probe])",
                                         "tds => tds.map(td => td.closest('tr').querySelector('th code').textContent)")
    assert replaced == [label["S3"]] * 4, replaced
    assert page.locator("table.entry-grid td.entry-cell[data-probe]").count() == 10 * 4 - 4
    cell_input(page, label["S3"], "Cu").click()
    page.keyboard.press("Enter")  # down to the spike's Cu
    after = type_cell(page, label["S3SP"], "Cu", SPIKED_CU, "Enter")
    assert after == cell_input(page, label["CCV1"], "Cu").get_attribute("name"), after
    type_cell(page, label["CCV1"], "Cu", "101.8", "Tab")
    assert page.evaluate("window.__sameDocument === true"), "typing reloaded the page"
    s3 = page.locator(f"#{cell_input(page, label['S3'], 'Pb').evaluate('e => e.closest(`td`).id')} .entry-value")
    assert s3.get_attribute("data-value") == "0.388" and "μg/L" in s3.inner_text()
    shot(page, screenshots, "analysis-entry-grid-1280-zh")
    look(page, log, problems, "entry grid")

    # ---- QC: evaluate, the spike fails, signing is refused until a corrective action
    page.goto(f"/batches/{batch_no}/qc")
    with page.expect_response(lambda r: r.url.endswith("/qc/evaluate")):
        page.click("#run form button[type=submit]")
    page.wait_for_selector("#run tr[data-kind=spike][data-passed=fail]")
    verdicts = page.eval_on_selector_all("#run tr[data-kind]",
                                         "rows => rows.map(r => [r.dataset.kind, r.dataset.passed])")
    failed = [v for v in verdicts if v[1] == "fail"]
    assert failed == [["spike", "fail"]], verdicts
    assert "60" in page.inner_text("#run tr[data-kind=spike] td:nth-child(4)")
    assert label["S3"] in page.inner_text("#run tr[data-kind=spike]")
    page.fill("#signature input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("#signature button[type=submit]")
    assert page.get_attribute(".alert.error", "data-code") == "qc_failure_unresolved", page.content()[:2000]
    assert "加标" in page.inner_text(".alert.error")
    expect_refusal_logged(log, "409")
    shot(page, screenshots, "analysis-qc-refused-1280-zh")
    page.set_viewport_size(PHONE)
    shot(page, screenshots, "analysis-qc-refused-360-zh")
    page.set_viewport_size(DESKTOP)
    look(page, log, problems, "QC refused")
    with server_db.reading() as session:
        assert session.scalars(select(AnalysisBatch.state).where(AnalysisBatch.batch_no == batch_no)).one() \
            == "qc_failed"

    # a justified qualifier "S" on the spike's sample
    evaluation = page.get_attribute("#run tr[data-kind=spike]", "data-evaluation")
    assert page.locator(f"#run tr[data-kind=spike] a[href='#corrective-{evaluation}']").count() == 1
    form = page.locator(f"#run tr.corrective-row[data-for='{evaluation}'] form#corrective-{evaluation}")
    form.locator("select[name=kind]").select_option("qualifier")
    form.locator("select[name=qualifier]").select_option("S")
    form.locator("textarea[name=justification]").fill(
        "加标回收率 60%，低于 70%–130%；基体干扰（高盐），已用标准加入法核查 Cu 结果一致，"
        "结果加注 S 报出。/ Spike recovery 60 %: matrix interference; Cu confirmed by standard addition.")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.locator(".alert.error").count() == 0, page.inner_text(".alert.error")
    assert page.locator("#actions tr[data-action=qualifier]").count() == 1
    shot(page, screenshots, "analysis-qc-corrective-1280-zh")
    look(page, log, problems, "QC corrective")

    # ---- sign with the password: submitted for review, the signature block shows
    page.fill("#signature input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("#signature button[type=submit]")
    assert page.locator(".alert.error").count() == 0, page.inner_text(".alert.error")
    page.wait_for_selector("#signature .signature.intact")
    assert page.get_attribute(".page-head [data-state]", "data-state") == "submitted"
    shot(page, screenshots, "analysis-qc-signed-1280-zh")
    look(page, log, problems, "QC signed")

    with server_db.reading() as session:
        batch = session.scalars(select(AnalysisBatch).where(AnalysisBatch.batch_no == batch_no)).one()
        assert batch.state == "submitted" and batch.signature_id is not None
        positions = {p.id: p.label for p in session.scalars(select(BatchPosition).where(
            BatchPosition.batch_id == batch.id))}
        results = session.scalars(select(AnalysisResult).where(AnalysisResult.position_id.in_(positions))).all()
        sources = {(positions[r.position_id], r.parameter): r.source for r in results}
        assert sources[(label["S1"], "Cu")] != sources[(label["S3"], "Cu")] == "manual", sources
        assert len(sources) == 17 + 8 + 6  # imported, pasted, typed
        assert session.scalars(select(CorrectiveAction).where(CorrectiveAction.batch_id == batch.id)).one() \
            .qualifier == "S"

    # ---- the control chart of the demo month and a calibration curve, in English
    ensure_language(page, "en")
    page.goto("/charts?method=HJ+535-2009&kind=spike")
    page.click("tr[data-chart='HJ 535-2009|NH3-N|spike'] a")
    page.wait_for_selector("svg")
    assert page.locator("svg circle").count() >= 20
    shot(page, screenshots, "analysis-chart-nh3n-spike-1280-en")
    look(page, log, problems, "control chart")

    page.goto("/curves?method=HJ+535-2009")
    with page.expect_navigation():
        page.locator("table tbody tr a[href^='/curves/CC']").first.click()
    page.wait_for_selector("svg")
    shot(page, screenshots, "analysis-curve-nh3n-1280-en")
    look(page, log, problems, "curve")

    assert not problems, "\n".join(problems)
