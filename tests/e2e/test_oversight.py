"""Oversight in a real Chromium (issue 10 "Done when"): an interference record filed, an alarm
dispositioned, a draw run as the inspector, and the quality manager's dashboard, the audit
explorer and a report's evidence chain looked at.

- The demo sampler, on a phone, files an interference record from /oversight/interference/new
  (a village cadre asked on the spot to move the sampling point, the sampler refused; a call note
  attached with set_input_files) and sees it in their register; the quality manager opens it and
  acknowledges it; the sampler's page shows the acknowledgement; the demo analyst, who did not
  file it, gets a 404 for it.
- The quality manager opens /oversight/alarms, an open alarm, reads its evidence, posts a
  dismissal with a blank reason (the refusal is on the page, not a 500), moves it to
  investigating with a reason and dismisses it with a reason.
- The inspector draws three batches of the demo month with a given seed, sees the picks and the
  draw verified, records a finding on a pick; a dismissal the inspector posts is refused
  (inspector_read_only) on the page.
- The quality dashboard's SVG charts, the explorer's history of the dispositioned alarm (red and
  green differences), the evidence chain of the issued report BG2026-0002.

Page faults on the way (console errors, layout problems, a status the records contradict) are
collected and fail the test at the end, after every screenshot. Screenshots in
docs/screenshots/oversight-*.png."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.oversight import models as _oversight_models  # noqa: F401  (the oversight tables, for the mappers)
from app.oversight.demo import call_note_png
from app.oversight.models import AnomalyAlarm, InterferenceRecord
from tests.e2e.conftest import DESKTOP, PHONE, ROOT, sign_in
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

DOCS = ROOT / "docs" / "screenshots"
SEED = "e2e-draw-2026"
CADRE = "马建设"


class Walk:
    """One browser context per person (signed in once), the problems seen."""

    def __init__(self, new_page):
        self.new_page = new_page
        self.pages: dict[str, tuple[object, object]] = {}
        self.problems: list[str] = []

    def as_(self, username: str, viewport: dict | None = None):
        if username not in self.pages:
            page, log = self.new_page(viewport or DESKTOP)
            sign_in(page, username)
            self.pages[username] = (page, log)
        return self.pages[username][0]

    def look(self, username: str, name: str) -> None:
        """Layout and console problems of the page as it stands (in its own viewport)."""
        page, log = self.pages[username]
        found = layout_problems(page)
        if (page.viewport_size or DESKTOP)["width"] >= DESKTOP["width"]:
            found = [p for p in found if "horizontal overflow" not in p]
        self.problems += [f"{name}: {p}" for p in found]
        self.problems += [f"{name}: {e}" for e in log.take()]

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


def shot(page, name: str, max_height: int | None = None) -> Path:
    """A full-page PNG, or its top `max_height` pixels (a page of many screens)."""
    DOCS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0); document.querySelectorAll('.table-wrap').forEach(w => w.scrollLeft = 0)")
    path = DOCS / f"{name}.png"
    if max_height is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        width = (page.viewport_size or DESKTOP)["width"]
        page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": max_height})
    return path


def submit(page, form_selector: str) -> int:
    """Click the form's submit button and wait for the page the post answers; its status."""
    with page.expect_navigation() as navigation:
        page.locator(f"{form_selector} button[type=submit]").click()
    response = navigation.value
    return response.status if response is not None else 0


def alert_text(page) -> str:
    return " ".join(page.locator(".alert, .error, [role=alert]").all_inner_texts())


# ---------------------------------------------------------------- the interference log


def _file_interference(walk: Walk) -> str:
    page = walk.as_("sampler", PHONE)
    page.goto("/oversight/interference/new")
    now = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=2)
    page.fill("input[name=interferer_name]", CADRE)
    page.fill("input[name=interferer_position]", "村委会主任")
    page.fill("input[name=interferer_organisation]", "江岸区谌家矶街道某村村民委员会")
    page.fill("input[name=occurred_at]", f"{now:%Y-%m-%dT%H:%M}")
    page.select_option("select[name=channel]", "oral")
    page.select_option("select[name=request_kind]", "move_site")
    page.fill("textarea[name=what_was_asked]",
              "在断面现场要求采样员“往上游走两百米再采，这边排口刚放过水，不具代表性”，并称已跟区里打过招呼。")
    page.fill("input[name=sites]", "JC-W07")
    page.select_option("select[name=lab_response]", "refused")
    page.fill("textarea[name=response_detail]", "按监测方案在断面规定位置采样，未移动采样点；已拍照记录现场。")
    page.fill("input[name=witnesses]", "采样车驾驶员 王建军")
    note = call_note_png(["现场记录 / Field note", f"{now:%Y-%m-%d %H:%M} JC-W07", f"{CADRE} 要求移动采样点，已拒绝"])
    page.set_input_files("input[name=attachments]", files=[
        {"name": "现场记录.png", "mimeType": "image/png", "buffer": note}])
    shot(page, "oversight-interference-new")
    walk.look("sampler", "interference form (phone)")
    status = submit(page, "#interference-form")
    walk.expect(status == 200 and "/oversight/interference/GY" in page.url,
                f"filing answered {status} at {page.url}: {alert_text(page)}")
    record_no = page.url.rstrip("/").rsplit("/", 1)[-1]
    walk.expect(page.locator("[data-state=filed]").count() == 1, "the new record does not show the state filed")
    walk.expect(page.locator("a[href*='/files/']").count() >= 1, "the new record shows no attachment link")
    page.goto("/oversight/interference")
    walk.expect(page.locator(f"tr[data-record='{record_no}']").count() == 1,
                f"{record_no} is not in the sampler's register")
    walk.look("sampler", "interference register (phone)")
    return record_no


def _acknowledge(walk: Walk, record_no: str) -> None:
    page = walk.as_("quality")
    page.goto(f"/oversight/interference/{record_no}")
    walk.expect(CADRE in page.inner_text("main"), "the quality manager does not see the interferer's name")
    page.click("details#acknowledge > summary")
    page.fill(f"form[action$='/{record_no}/acknowledge'] textarea[name=text]", "已阅，请采样组将现场照片归档。")
    status = submit(page, f"form[action$='/{record_no}/acknowledge']")
    walk.expect(status == 200 and page.locator("[data-state=acknowledged]").count() == 1,
                f"acknowledging answered {status}: {alert_text(page)}")
    walk.expect(page.locator("li[data-kind=acknowledged]").count() == 1, "the acknowledgement is not listed")
    shot(page, "oversight-interference")
    walk.look("quality", "interference record")
    sampler = walk.as_("sampler")
    sampler.goto(f"/oversight/interference/{record_no}")
    walk.expect(sampler.locator("[data-state=acknowledged]").count() == 1
                and sampler.locator("li[data-kind=acknowledged]").count() == 1,
                "the filer's page does not show the acknowledgement")
    analyst = walk.as_("analyst")
    answer = analyst.goto(f"/oversight/interference/{record_no}")
    walk.expect(answer is not None and answer.status == 404,
                f"an analyst who did not file {record_no} got {answer.status if answer else '?'}, not 404")
    walk.expect(CADRE not in analyst.inner_text("body"), "the analyst's 404 page shows the record")


# ---------------------------------------------------------------- alarms


def _dispose(walk: Walk) -> str:
    page = walk.as_("quality")
    page.goto("/oversight/alarms")
    rows = page.locator("tr[data-alarm][data-state=open]")
    walk.expect(rows.count() >= 1, "no open alarm in the list")
    shot(page, "oversight-alarms")
    walk.look("quality", "alarm list")
    alarm_no = rows.first.get_attribute("data-alarm")
    with page.expect_navigation():
        rows.first.locator(f"a[href$='/{alarm_no}']").click()
    walk.expect(page.locator("table.evidence tr").count() >= 1, f"{alarm_no} shows no evidence")
    # a dismissal with a blank reason: refused on the page, nothing changes
    dismiss = f"form[action$='/{alarm_no}/dismiss']"
    page.fill(f"{dismiss} textarea[name=reason]", "   ")
    status = submit(page, dismiss)
    walk.expect(status == 422 and "原因" in alert_text(page),
                f"a dismissal without a reason answered {status}: {alert_text(page)!r}")
    walk.pages["quality"][1].take()  # the 422 of that post is the console's only complaint
    page.goto(f"/oversight/alarms/{alarm_no}")
    investigate = f"form[action$='/{alarm_no}/investigate']"
    page.fill(f"{investigate} textarea[name=reason]", "核对原始记录与交接记录，询问当事人。")
    status = submit(page, investigate)
    walk.expect(status == 200 and page.locator(f"form[action$='/{alarm_no}/investigate']").count() == 0,
                f"starting the investigation answered {status}: {alert_text(page)}")
    page.fill(f"{dismiss} textarea[name=reason]", "经核实为记录遗漏，样品完整性不受影响；已补记并对当事人进行提醒。")
    status = submit(page, dismiss)
    walk.expect(status == 200 and page.locator("form[action*='/oversight/alarms/']").count() == 0,
                f"the dismissal answered {status}: {alert_text(page)}")
    walk.expect("经核实为记录遗漏" in page.inner_text("main"), "the dismissal's reason is not on the alarm page")
    shot(page, "oversight-alarm")
    walk.look("quality", "alarm page")
    return alarm_no


# ---------------------------------------------------------------- the inspector


def _inspect(walk: Walk, alarm_no: str) -> None:
    page = walk.as_("inspector")
    page.goto("/oversight/inspections/new")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    page.fill("#draw-form input[name=title]", "双随机抽查：分析批次（e2e）")
    page.check("#draw-form input[name=target][value=batches]")
    page.fill("#draw-form input[name=period_from]", f"{today - timedelta(days=40):%Y-%m-%d}")
    page.fill("#draw-form input[name=period_to]", f"{today - timedelta(days=1):%Y-%m-%d}")
    page.fill("#draw-form input[name=size]", "3")
    page.fill("#draw-form input[name=seed]", SEED)
    walk.look("inspector", "draw form")
    status = submit(page, "#draw-form")
    walk.expect(status == 200 and "/oversight/inspections/JC" in page.url,
                f"the draw answered {status} at {page.url}: {alert_text(page)}")
    walk.expect(page.locator("li[data-pick]").count() == 3, "the draw does not show three picks")
    walk.expect(page.locator("[data-verify=ok]").count() == 1, "the draw is not shown verified")
    walk.expect(SEED in page.inner_text("main"), "the seed is not shown")
    page.select_option("#finding-form select[name=target]", index=1)
    page.select_option("#finding-form select[name=severity]", "minor")
    page.fill("#finding-form textarea[name=text]", "批次原始记录中标准曲线配制记录未注明使用液编号，请补充。")
    status = submit(page, "#finding-form")
    walk.expect(status == 200 and "标准曲线配制记录" in page.inner_text("main"),
                f"recording the finding answered {status}: {alert_text(page)}")
    shot(page, "oversight-inspection")
    walk.look("inspector", "inspection")
    # the inspector reads an alarm and has no forms; a dismissal posted anyway is refused on the page
    page.goto(f"/oversight/alarms/{alarm_no}")
    walk.expect(page.locator("form[action*='/oversight/alarms/']").count() == 0,
                "the inspector is offered disposition forms")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    page.evaluate("""([alarm, token]) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = `/oversight/alarms/${alarm}/dismiss`;
        form.id = 'inspector-dismiss';
        for (const [name, value] of [['csrf_token', token], ['reason', '检查员尝试处置']]) {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = name; input.value = value;
            form.appendChild(input);
        }
        const button = document.createElement('button');
        button.type = 'submit';
        button.textContent = '排除';
        form.appendChild(button);
        (document.querySelector('main') || document.body).appendChild(form);
    }""", [alarm_no, token])
    status = submit(page, "#inspector-dismiss")
    text = page.inner_text("body")
    walk.expect(status == 403 and "只读" in text, f"the inspector's dismissal answered {status}: {text[:300]!r}")
    walk.pages["inspector"][1].take()  # the 403 of the refused post is the console's only complaint


# ---------------------------------------------------------------- dashboards, explorer, evidence


def _look_around(walk: Walk, server_db, alarm_no: str) -> None:
    page = walk.as_("quality")
    page.goto("/oversight/quality")
    walk.expect(page.locator("svg").count() >= 2, "the quality dashboard shows fewer than two SVG charts")
    shot(page, "oversight-quality")
    walk.look("quality", "quality dashboard")
    with server_db.reading() as session:
        alarm_id = session.scalars(select(AnomalyAlarm.id).where(AnomalyAlarm.alarm_no == alarm_no)).one()
    page.goto(f"/oversight/audit/entity/anomaly_alarm/{alarm_id}")
    walk.expect(page.locator("table.diff del").count() >= 1 and page.locator("table.diff ins").count() >= 1,
                "the alarm's history shows no red/green differences")
    shot(page, "oversight-explorer")
    walk.look("quality", "explorer")
    inspector = walk.as_("inspector")
    inspector.goto("/oversight/evidence/BG2026-0002")
    walk.expect(inspector.locator("section[data-section]").count() >= 3
                and inspector.locator("tr[data-file]").count() >= 1,
                "the evidence chain of BG2026-0002 shows too little")
    shot(inspector, "oversight-evidence", max_height=2600)  # the chain runs to some forty screens
    walk.look("inspector", "evidence chain")


def test_oversight_walk(new_page, server_db) -> None:
    walk = Walk(new_page)
    record_no = _file_interference(walk)
    _acknowledge(walk, record_no)
    alarm_no = _dispose(walk)
    _inspect(walk, alarm_no)
    _look_around(walk, server_db, alarm_no)
    with server_db.reading() as session:
        record = session.scalars(select(InterferenceRecord).where(InterferenceRecord.record_no == record_no)).one()
        assert record.interferer_name == CADRE and record.channel == "oral"
        alarm = session.scalars(select(AnomalyAlarm).where(AnomalyAlarm.alarm_no == alarm_no)).one()
        assert alarm.state == "dismissed"
    assert not walk.problems, "\n".join(walk.problems)
