"""A report taken through the three levels in a real Chromium (issue 9 "Done when").

The demo analyst compiles a report over two samples whose analysis is signed, signs it as
compiled and submits it; the checker (校核), the reviewer (审核) and the signatory (签发) act on
the report's page as three people; the signatory prepares the PDF for signing, reads it, approves
with the password, and the panel polls until the lab's PAdES signature is on and the report is
issued. The signed PDF is downloaded, its first page drawn with pdftoppm and looked at; the public
/verify/{token} page (a fresh browser, not signed in) accepts the file and calls a copy with one
byte changed invalid (a verdict on the page, not an error page). The quality manager amends it:
the analyst edits the amendment's header (English, a corrected contact), it goes through the three
levels again and is issued, and the old report's verify page says superseded by the new number.

Setup outside the browser (the analysis demo leaves no sample ready to report): two demo samples
with results in QC-passed, signed batches get "not analysed" reasons for the parameters the demo
never analysed (recorded as the demo analyst through app.analysis.submission); the checker is
qualified for their methods (by the technical manager) and the signatory gets a scope per method
(proposed by the technical manager, approved by the quality manager), each only where the demo
has none. Page faults seen on the way (an act whose redirect does not reload the page, a badge
that contradicts the records) are collected and fail the test at the end, after every
screenshot. Screenshots in docs/screenshots/reports-*.png and verify-*.png."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.analysis import qualifications, submission
from app.analysis.models import AnalysisBatch, AnalysisResult, BatchPosition, MethodVersion
from app.core.db import utcnow
from app.core.labtime import lab_calendar
from app.reports import scopes
from app.reports.content import load_content
from app.reports.models import Report, ReportState
from app.samples.field import signed_field_readings
from app.samples.models import Sample, SampleParameter
from app.sites import models as _site_models  # noqa: F401  (the sample's site tables, for the mappers)
from tests.e2e.conftest import DEMO_PASSWORD, DESKTOP, PHONE, ROOT, sign_in, user_named
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

DOCS = ROOT / "docs" / "screenshots"
NOT_ANALYSED = "该项目不在本次委托范围内，委托方书面确认不测定"


@pytest.fixture(scope="module")
def samples(server_db) -> list[str]:
    """Two demo samples in analysis with results in a QC-passed signed batch; what the demo did
    not analyse (and the sampler did not read on site) is recorded as not analysed, so they are
    ready to report."""
    with server_db.transaction() as session:
        rows = session.execute(
            select(Sample, AnalysisBatch.method_version_id)
            .join(AnalysisResult, AnalysisResult.sample_id == Sample.id)
            .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
            .join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
            .where(BatchPosition.role == "sample", AnalysisBatch.state == "submitted",
                   AnalysisBatch.qc_passed.is_(True), Sample.state == "in_analysis")
            .order_by(Sample.sample_no)).all()
        assert rows, "the demo leaves no sample with a signed, QC-passed result"
        chosen = list(dict.fromkeys(s.sample_no for s, _ in rows))[:2]
        assert len(chosen) == 2, chosen
        analyst, technical, quality, checker, signatory = (
            user_named(session, name) for name in ("analyst", "technical", "quality", "checker", "signatory"))
        method_ids = {session.get(MethodVersion, v).method_id for s, v in rows if s.sample_no in chosen}
        today = lab_calendar(session).today()
        for no in chosen:
            sample = session.scalars(select(Sample).where(Sample.sample_no == no)).one()
            done = set(session.scalars(
                select(AnalysisResult.parameter).join(AnalysisBatch, AnalysisBatch.id == AnalysisResult.batch_id)
                .join(BatchPosition, BatchPosition.id == AnalysisResult.position_id)
                .where(AnalysisResult.sample_id == sample.id, BatchPosition.role == "sample",
                       AnalysisBatch.state == "submitted")))
            # the sampler's signed field readings (WT, pH, DO, EC) print on the report as they stand
            done |= {parameter for _, parameter in signed_field_readings(session, [sample.id])}
            for parameter in session.scalars(select(SampleParameter.parameter)
                                             .where(SampleParameter.sample_id == sample.id)):
                if parameter not in done:
                    submission.record_not_analysed(session, analyst, sample, parameter, NOT_ANALYSED)
            session.refresh(sample)
            assert sample.state == "results_entered", (no, sample.state)
        for method_id in sorted(method_ids):
            from app.analysis.models import Method

            method = session.get(Method, method_id)
            if qualifications.covering(session, checker.id, method_id, utcnow()) is None:
                qualifications.grant_qualification(session, technical, checker, method, f"SG-E2E-{method_id}",
                                                   "省环境监测中心站", today - timedelta(days=300),
                                                   today + timedelta(days=700))
            if not any(scopes.scope_covers(scope, scope.parameter, method_id, scope.matrix)
                       for scope in scopes.scopes_valid_on(session, signatory.id, today)):
                scope = scopes.propose_signatory_scope(session, technical, signatory, method=method,
                                                       valid_from=today - timedelta(days=30),
                                                       basis="授权签字人考核 2026")
                scopes.approve_signatory_scope(session, quality, scope)
    return chosen


# ---------------------------------------------------------------- helpers


class Walk:
    """One browser context per person (signed in once), the problems seen, the screenshots."""

    def __init__(self, new_page):
        self.new_page = new_page
        self.pages: dict[str, tuple[object, object]] = {}
        self.problems: list[str] = []

    def as_(self, username: str):
        if username not in self.pages:
            page, log = self.new_page(DESKTOP)
            sign_in(page, username)
            self.pages[username] = (page, log)
        return self.pages[username][0]

    def look(self, username: str, name: str, *, phone: bool = False) -> None:
        page, log = self.pages[username]
        for viewport in ((DESKTOP, PHONE) if phone else (DESKTOP,)):
            page.set_viewport_size(viewport)
            found = layout_problems(page)
            if viewport is DESKTOP:
                found = [p for p in found if "horizontal overflow" not in p]
            self.problems += [f"{name} {viewport['width']}px: {p}" for p in found]
        page.set_viewport_size(DESKTOP)
        self.problems += [f"{name}: {e}" for e in log.take()]


def shot(page, name: str, viewport: dict | None = None) -> Path:
    DOCS.mkdir(parents=True, exist_ok=True)
    if viewport is not None:
        page.set_viewport_size(viewport)
    page.evaluate("window.scrollTo(0, 0); document.querySelectorAll('.table-wrap').forEach(w => w.scrollLeft = 0)")
    path = DOCS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if viewport is not None:
        page.set_viewport_size(DESKTOP)
    return path


def open_report(page, report_no: str) -> None:
    page.goto(f"/reports/{report_no}")
    page.wait_for_selector("#issue-panel[data-state]")  # the panel loaded (htmx) in place of its link


def same_document(page) -> bool:
    """Whether the page is still the document that was marked before the post (a navigation
    under way destroys the context: wait for the new page and ask it)."""
    for _ in range(20):
        try:
            page.wait_for_load_state()
            return bool(page.evaluate("window.__before_post === true"))
        except Exception as error:  # noqa: BLE001 - only "context destroyed" is retried
            if "context was destroyed" not in str(error):
                raise
            page.wait_for_timeout(100)
    raise AssertionError("the page kept navigating")


def post_and_follow(page, form, suffix: str, problems: list[str]) -> None:
    """Click the form's submit button; htmx posts it and, on success, follows the 204's
    HX-Redirect to the report page (a refusal answers 4xx with the message: fail with it). The
    redirect must load a new page: one that stays (the same page with only an anchor added is a
    jump within the page in the browser, no reload) shows the old forms as if nothing happened;
    that is noted as a problem and the page reloaded so the walk goes on."""
    page.evaluate("window.__before_post = true")
    with page.expect_response(lambda r: r.url.endswith(suffix) and r.request.method == "POST") as answer:
        form.locator("button[type=submit]").click()
    if answer.value.status != 204:
        pytest.fail(f"{suffix}: {answer.value.status} {page.locator('.alert').all_inner_texts()}")
    target = answer.value.headers.get("hx-redirect", "")
    page.wait_for_url(f"**{target}")
    if same_document(page):
        # an anchor jump fires no load: give a real reload 1 s before calling it stale
        page.wait_for_timeout(1000)  # (wait_for_function evaluates strings: the CSP refuses it)
        if same_document(page):
            problems.append(f"POST …{suffix} answered HX-Redirect {target}: the browser only jumped to the "
                            f"anchor (same page), the page was not reloaded and still shows the old state and forms")
            page.reload()


def sign_level(page, report_no: str, level: str, problems: list[str]) -> None:
    """The level's form on the report page, signed with the password (htmx swaps #actions)."""
    open_report(page, report_no)
    form = page.locator("#sign-form")
    assert form.get_attribute("action") == f"/reports/{report_no}/{level}"
    form.locator("input[name=password]").fill(DEMO_PASSWORD)
    post_and_follow(page, form, f"/{level}", problems)
    page.wait_for_selector("#issue-panel[data-state]")
    assert page.locator("#sign-form").count() == 0


def submit_compiled(page, report_no: str, problems: list[str]) -> None:
    open_report(page, report_no)
    form = page.locator("#submit-form")
    form.locator("input[name=password]").fill(DEMO_PASSWORD)
    post_and_follow(page, form, "/submit", problems)
    page.wait_for_selector("#issue-panel[data-state]")
    assert page.locator("#submit-form").count() == 0


def approve_and_issue(walk: Walk, report_no: str) -> None:
    """签发: prepare the PDF for signing (a job; the panel polls), read it, approve with the
    password, and wait while the panel polls until the signing job has issued the report."""
    page = walk.as_("signatory")
    open_report(page, report_no)
    page.click("#render-form button[type=submit]")
    page.wait_for_selector("#issue-panel #approve-form", timeout=120_000)
    pdf_link = page.locator("#rendered a[href$='/rendered.pdf']")
    rendered = page.request.get(pdf_link.get_attribute("href"))
    assert rendered.ok and rendered.body()[:5] == b"%PDF-", rendered.status
    page.fill("#approve-form input[name=password]", DEMO_PASSWORD)
    page.click("#approve-form button[type=submit]")
    page.wait_for_selector("#issue-panel[data-state=issued] #issued", timeout=120_000)


def to_png(pdf: bytes, tmp: Path, name: str) -> Path:
    """Page 1 of the PDF drawn by poppler into docs/screenshots/<name>.png."""
    source = tmp / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile", str(source),
                    str(DOCS / name)], check=True, timeout=120)
    return DOCS / f"{name}.png"


def upload(page, token: str, data: bytes, name: str) -> None:
    page.set_input_files("input[type=file][name=file]",
                         files=[{"name": name, "mimeType": "application/pdf", "buffer": data}])
    with page.expect_response(lambda r: r.url.endswith(f"/verify/{token}") and r.request.method == "POST") as answer:
        page.click("form[enctype='multipart/form-data'] button[type=submit]")
    assert answer.value.status < 500, answer.value.status


# ---------------------------------------------------------------- the walk


def test_report_three_levels_issue_verify_amend(new_page, server_db, samples, tmp_path):
    walk = Walk(new_page)

    # 编制: the analyst prepares the report from the two samples and submits it signed
    page = walk.as_("analyst")
    page.goto("/reports/new")
    page.fill("input[name=title]", "地表水例行监测报告")
    page.fill("input[name=client_name]", "市生态环境局")
    page.fill("input[name=client_contact]", "监测科 陈工 0571-8800 1234")
    page.select_option("select[name=language]", "zh")
    for no in samples:
        page.check(f"table.reportable-samples input[name=samples][value='{no}']")
    with page.expect_navigation():
        page.click("form#new-report > button[type=submit]")
    report_no = page.locator("h1 code").inner_text().strip()
    assert page.url.endswith(f"/reports/{report_no}"), page.url
    for no in samples:
        assert page.locator(f"table.report-results tr.first-of-sample[data-sample='{no}']").count() == 1
    page.wait_for_selector("#issue-panel[data-state]")
    with server_db.reading() as session:
        draft = session.scalars(select(Report).where(Report.report_no == report_no)).one()
        conditional = {s.sample.sample_no for s in load_content(session, draft).samples
                       if s.receipt is not None and s.receipt.decision == "accept_with_conditions"}
    for no in samples:
        badge = page.locator(f"table.report-results tr[data-sample='{no}'] .badge.warn").count() > 0
        if badge != (no in conditional):
            walk.problems.append(f"report page: sample {no} {'shows' if badge else 'lacks'} the "
                                 f"'Conditional receipt' badge but its receipt was "
                                 f"{'with' if no in conditional else 'without'} conditions")
    walk.look("analyst", "report draft", phone=True)
    shot(page, "reports-detail-checklist")
    submit_compiled(page, report_no, walk.problems)
    assert page.locator(".page-head .badge").get_attribute("data-state") in ("draft", "submitted")

    # 校核 by the checker, from the worklist
    page = walk.as_("checker")
    page.goto("/review")
    assert page.locator(f"table.review-worklist tr[data-report='{report_no}'][data-level=check] a").count() == 1
    walk.look("checker", "review worklist", phone=True)
    shot(page, "reports-review-worklist")
    sign_level(page, report_no, "check", walk.problems)

    # 审核 by the reviewer
    page = walk.as_("reviewer")
    sign_level(page, report_no, "review", walk.problems)
    walk.look("reviewer", "reviewed report")

    # 签发 by the signatory, issued by the job
    approve_and_issue(walk, report_no)
    page = walk.as_("signatory")
    page.reload()  # the panel polls itself only: the page head and level forms are as loaded
    page.wait_for_selector("#issue-panel[data-state=issued]")
    assert page.locator(".page-head .badge").get_attribute("data-state") == "issued"
    assert page.locator("#sign-form, #return-form, #submit-form").count() == 0
    walk.look("signatory", "issued report", phone=True)
    page.locator("#issue-panel").scroll_into_view_if_needed()
    DOCS.mkdir(parents=True, exist_ok=True)
    page.locator("#issue-panel").screenshot(path=str(DOCS / "reports-issue-panel.png"))
    shot(page, "reports-detail-360", PHONE)
    pdf_answer = page.request.get(f"/reports/{report_no}/report.pdf")
    assert pdf_answer.ok
    issued_pdf = pdf_answer.body()
    with server_db.reading() as session:
        report = session.scalars(select(Report).where(Report.report_no == report_no)).one()
        assert report.state == ReportState.ISSUED.value
        token, first_sha = report.verify_token, report.pdf_sha256
    import hashlib

    assert hashlib.sha256(issued_pdf).hexdigest() == first_sha
    assert page.locator(f"#issued a[href$='/verify/{token}']").count() == 1
    to_png(issued_pdf, tmp_path, "reports-issued-zh-p1")

    # the public verify page, not signed in: the file matches; one byte changed: invalid
    public, public_log = new_page(DESKTOP)
    public.goto(f"/verify/{token}")
    assert public.locator(".verify-standing .badge").get_attribute("data-status") == "valid"
    upload(public, token, issued_pdf, f"{report_no}.pdf")
    public.wait_for_selector("#verify-result [data-outcome=match]")
    assert public.locator("#verify-result .hash").inner_text().strip() == first_sha
    shot(public, "verify-valid")
    middle = len(issued_pdf) // 2
    tampered = issued_pdf[:middle] + bytes([issued_pdf[middle] ^ 0x01]) + issued_pdf[middle + 1:]
    upload(public, token, tampered, f"{report_no}-copy.pdf")
    public.wait_for_selector("#verify-result [data-outcome=invalid]")
    assert public.locator("#verify-result [data-outcome=match]").count() == 0
    shot(public, "verify-tampered")
    walk.problems += [f"verify page: {e}" for e in public_log.take()]

    # the quality manager amends it; the analyst compiles the amendment (English, contact corrected)
    page = walk.as_("quality")
    open_report(page, report_no)
    with page.expect_navigation():
        page.click("#amend-link")
    page.fill("#amend-form textarea[name=reason]", "委托方要求出具英文报告，并更正联系人电话（原为 0571-8800 1234）")
    with page.expect_navigation():
        page.click("#amend-form button[type=submit]")
    amended_no = page.locator("h1 code").inner_text().strip()
    assert amended_no != report_no and amended_no.startswith(report_no), amended_no

    page = walk.as_("analyst")
    open_report(page, amended_no)
    page.click("#header-form > summary")
    page.select_option("#header-form select[name=language]", "en")
    page.fill("#header-form input[name=title]", "Surface water routine monitoring report")
    page.fill("#header-form input[name=client_contact]", "Monitoring section, Mr Chen, 0571-8800 4321")
    post_and_follow(page, page.locator("#header-form form"), "/header", walk.problems)
    submit_compiled(page, amended_no, walk.problems)
    sign_level(walk.as_("checker"), amended_no, "check", walk.problems)
    sign_level(walk.as_("reviewer"), amended_no, "review", walk.problems)
    approve_and_issue(walk, amended_no)
    page = walk.as_("signatory")
    amended_pdf = page.request.get(f"/reports/{amended_no}/report.pdf").body()
    to_png(amended_pdf, tmp_path, "reports-issued-en-p1")
    with server_db.reading() as session:
        old = session.scalars(select(Report).where(Report.report_no == report_no)).one()
        new = session.scalars(select(Report).where(Report.report_no == amended_no)).one()
        assert (old.state, new.state, new.language) == ("superseded", "issued", "en")
        assert old.superseded_by_id == new.id and old.pdf_sha256 == first_sha

    # the old report's verify page: superseded by the amendment, the old file still genuine
    public.goto(f"/verify/{token}")
    assert public.locator(".verify-standing .badge").get_attribute("data-status") == "superseded"
    assert amended_no in public.locator(".verify-standing").inner_text()
    upload(public, token, issued_pdf, f"{report_no}.pdf")
    public.wait_for_selector("#verify-result [data-outcome=match]")
    shot(public, "verify-superseded")
    walk.problems += [f"verify page (superseded): {e}" for e in public_log.take()]

    assert not walk.problems, "\n".join(walk.problems)
