"""Open alarms in the review checklist of the data they touch (issue 10 item 2): a blocking rule's
open or investigated alarm on a report's sample warns at check and review and fails the item at
approval (the signatory cannot sign); a dismissed one lets the report through; a non-blocking or a
confirmed one warns; the item reads in a fixed number of queries whatever the number of samples."""

from __future__ import annotations

import pytest

from app.oversight import anomalies
from app.reports import review
from app.reports.checklist import compute_checklist
from app.reports.content import load_content
from app.reports.models import Report
from app.reports.review_errors import ChecklistBlocks
from tests.conftest import PASSWORD
from tests.oversight.test_alarm_dispositions import dispose
from tests.oversight.test_anomalies import fake_rules, raise_alarm  # noqa: F401
from tests.reports.conftest import analyst, nh3n_method, reportable, store, technical, uv  # noqa: F401
from tests.reports.test_drafts import act, state_of, submitted
from tests.reports.test_issue import approve, counts, render


def alarms_item(db, report):
    with db.reading() as session:
        row = session.get(Report, report.id)
        return compute_checklist(session, row, load_content(session, row)).by_code()["alarms"]


def test_an_open_alarm_warns_at_check_and_review_and_blocks_approval_until_disposed(db, users, reportable,  # noqa: F811
                                                                                   fake_rules):  # noqa: F811
    """DOMAIN.md §7: an alarm must be disposed of before issue. 校核 and 审核 see it (a warning
    saying so) and go on; 签发 is refused while it is open or under investigation."""
    report = submitted(db, reportable)
    assert alarms_item(db, report).status == "ok"
    sample = reportable.samples[0]
    alarm = raise_alarm(db, fake_rules["Z01"], "copied", [sample], responsible_user_id=reportable.analyst.id)
    item = alarms_item(db, report)
    assert item.status == "warn" and item.title == "Open anomaly alarms" and item.title_zh == "无未处置的异常报警"
    line = item.lines("en")[0]
    assert alarm.alarm_no in line and sample.sample_no in line and "to be disposed of before issue" in line
    assert "签发前须处置" in item.lines("zh")[0]
    act(db, review.check_report, reportable.checker, report, PASSWORD)
    act(db, review.review_report, reportable.reviewer, report, PASSWORD)
    assert state_of(db, report) == "reviewed"
    assert alarms_item(db, report).status == "fail"
    render(db, reportable.signatory, report)
    before = counts(db)
    with pytest.raises(ChecklistBlocks) as refusal:
        approve(db, reportable.signatory, report)
    assert alarm.alarm_no in refusal.value.message("en")
    assert counts(db) == before and state_of(db, report) == "reviewed"
    qm = users["quality_manager"]
    dispose(db, qm, alarm, "investigating", "调阅原始记录")
    assert alarms_item(db, report).status == "fail"  # still blocking while under investigation
    dispose(db, qm, alarm, "dismissed", "原始记录与数据一致")
    item = alarms_item(db, report)
    assert item.status == "ok" and "原始记录与数据一致" in item.lines("zh")[0]
    approve(db, reportable.signatory, report)
    assert state_of(db, report) in ("approved", "issued")


def test_non_blocking_and_confirmed_alarms_warn(db, users, reportable, fake_rules):  # noqa: F811
    report = submitted(db, reportable)
    s1, s2 = reportable.samples
    raise_alarm(db, fake_rules["Z02"], "soft", [s1])
    item = alarms_item(db, report)
    assert item.status == "warn" and "open" in item.lines("en")[0]
    confirmed = raise_alarm(db, fake_rules["Z01"], "hard", [s2])
    assert alarms_item(db, report).status == "warn"  # blocking only at approval
    dispose(db, users["quality_manager"], confirmed, "confirmed", "已重新分析", ["reanalysed"])
    item = alarms_item(db, report)
    assert item.status == "warn"
    assert any("confirmed (actions: reanalysed; 已重新分析)" in line for line in item.lines("en"))


def test_an_alarm_on_other_samples_is_not_shown(db, users, lab, reportable, fake_rules):  # noqa: F811
    report = submitted(db, reportable)
    (other,) = lab.samples(1)
    raise_alarm(db, fake_rules["Z01"], "elsewhere", [other])
    assert alarms_item(db, report).status == "ok"


def test_the_item_reads_in_two_queries_whatever_the_samples(db, users, reportable, fake_rules,  # noqa: F811
                                                           count_queries):
    report = submitted(db, reportable)
    for n, sample in enumerate(reportable.samples):
        raise_alarm(db, fake_rules["Z01"], f"k{n}", [sample])
        alarm = raise_alarm(db, fake_rules["Z01"], f"d{n}", [sample])
        dispose(db, users["quality_manager"], alarm, "dismissed", "无问题")
    with db.reading() as session:
        row = session.get(Report, report.id)
        content = load_content(session, row)
        with count_queries() as q:
            items = anomalies.alarm_checklist(session, row, content)
    assert q.count == 2 and items[0].status == "warn" and len(items[0].details) == 4  # blocks at approval only
