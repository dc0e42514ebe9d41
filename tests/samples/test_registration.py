"""Registration from tasks (with field QC samples) and ad hoc, one or in bulk; container lookup
by barcode for every bad case; refusals change nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.codes import check_digit_ok, with_check_digit
from app.core.errors import InspectorReadOnly, PermissionDenied
from app.samples import errors, registration
from app.samples.models import Container, ContainerState, Sample, SampleKind, SampleParameter
from app.samples.preservation import UnknownParameter
from app.samples.registration import AdhocSample
from app.sites.models import SamplingTask, SiteStatus, TaskStatus
from tests.samples.conftest import dispatch, make_site, make_task


def counts(db) -> tuple[int, int, int, int]:
    with db.reading() as session:
        return (session.scalar(select(func.count()).select_from(Sample)),
                session.scalar(select(func.count()).select_from(Container)),
                session.scalar(select(func.count()).select_from(SampleParameter)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


# ---------------------------------------------------------------- from a task


def test_dispatch_registers_routine_blank_and_duplicate_with_containers(db, dispatched_task):
    d = dispatched_task
    assert sorted(s.kind for s in d.samples) == ["field_blank", "field_duplicate", "routine"]
    day = d.task.scheduled_on.strftime("%y%m%d")
    assert sorted(s.sample_no for s in d.samples) == [f"WS01-{day}-{n:03d}" for n in (1, 2, 3)]
    routine = d.routine
    duplicate = d.of_kind(SampleKind.FIELD_DUPLICATE)[0]
    blank = d.of_kind(SampleKind.FIELD_BLANK)[0]
    assert duplicate.duplicate_of_id == routine.id and blank.duplicate_of_id is None
    assert all(s.task_id == d.task.id and s.site_id == d.site.id and s.sampler_id == d.sampler.id
               and s.scheduled_on == d.task.scheduled_on and s.state == "registered" for s in d.samples)
    for sample in d.samples:
        containers = d.containers[sample.id]
        assert [c.group_code for c in containers] == ["h2so4", "hno3", "cool_dark"]
        assert [c.position for c in containers] == [1, 2, 3]
        assert all(c.state == ContainerState.ISSUED.value for c in containers)
        assert all(check_digit_ok(c.barcode) and registration.CONTAINER_RE.match(c.barcode) for c in containers)
    assert json.loads(d.containers[routine.id][0].parameters) == ["COD", "NH3-N", "TP"]
    assert d.containers[routine.id][0].container_type == "G"  # COD needs glass
    barcodes = [c.barcode for cs in d.containers.values() for c in cs]
    assert len(set(barcodes)) == 9
    with db.reading() as session:
        task = session.get(SamplingTask, d.task.id)
        assert task.status == TaskStatus.DISPATCHED.value and task.dispatched_at is not None
        params = registration.parameters_of(session, [routine.id, blank.id])
        # the blank carries what the lab analyses, not the field tests
        assert params[routine.id] == ["WT", "pH", "DO", "COD", "NH3-N", "TP", "Cu", "Zn", "CODMn"]
        assert params[blank.id] == ["COD", "NH3-N", "TP", "Cu", "Zn", "CODMn"]
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions.count("sample.registered") == 3 and actions[-1] == "task.dispatched"


def test_dispatch_numbers_continue_within_the_day_and_restart_the_next(db, users, site, sampler, registrar):
    tm = users["technical_manager"]
    today = db.calendar.today()
    first = dispatch(db, registrar, make_task(db, tm, site, sampler=sampler), site, sampler)
    second = dispatch(db, registrar, make_task(db, tm, site, sampler=sampler, field_duplicates=1), site, sampler)
    tomorrow = dispatch(db, registrar, make_task(db, tm, site, sampler=sampler, scheduled_on=today + timedelta(days=1)),
                        site, sampler)
    day = today.strftime("%y%m%d")
    assert [s.sample_no for s in first.samples] == [f"WS01-{day}-001"]
    assert [s.sample_no for s in second.samples] == [f"WS01-{day}-002", f"WS01-{day}-003"]
    assert [s.sample_no for s in tomorrow.samples] == [f"WS01-{(today + timedelta(days=1)):%y%m%d}-001"]


@pytest.mark.parametrize("case", ["dispatched", "no_sampler", "unknown_parameter", "site_suspended",
                                  "site_proposed", "inspector", "analyst"])
def test_dispatch_refusals_change_nothing(db, users, registrar, sampler, case):
    tm = users["technical_manager"]
    site = make_site(db, tm, status=SiteStatus.SUSPENDED if case == "site_suspended" else
                     SiteStatus.PROPOSED if case == "site_proposed" else SiteStatus.ACTIVE)
    task = make_task(db, tm, site, sampler=None if case == "no_sampler" else sampler,
                     parameters=("COD", "Unobtainium") if case == "unknown_parameter" else ("COD",),
                     status=TaskStatus.DISPATCHED if case == "dispatched" else TaskStatus.SCHEDULED,
                     field_blanks=1)
    actor = {"inspector": users["inspector"], "analyst": users["analyst"]}.get(case, registrar)
    expected = {"dispatched": errors.TaskNotScheduled, "no_sampler": errors.TaskWithoutSampler,
                "unknown_parameter": UnknownParameter, "inspector": InspectorReadOnly,
                "analyst": PermissionDenied}.get(case)
    before = counts(db)
    with pytest.raises(Exception) as caught, db.transaction() as session:
        registration.dispatch_task(session, actor, session.get(SamplingTask, task.id))
    if expected:
        assert isinstance(caught.value, expected)
    else:
        assert type(caught.value).__name__ in ("SiteNotUsable", "SiteNotActive", "SiteNotYetActive")
    assert counts(db) == before
    with db.reading() as session:
        assert session.get(SamplingTask, task.id).status == task.status


def test_dispatch_day_dispatches_every_scheduled_task_of_the_day(db, users, site, sampler, registrar):
    tm = users["technical_manager"]
    other = make_site(db, tm, "WS02")
    today = db.calendar.today()
    make_task(db, tm, site, sampler=sampler, field_blanks=1, field_duplicates=1)
    make_task(db, tm, other, sampler=sampler)
    later = make_task(db, tm, site, sampler=sampler, scheduled_on=today + timedelta(days=2))
    with db.transaction() as session:
        samples = registration.dispatch_day(session, registrar, today)
    assert sorted(s.sample_no.split("-")[0] for s in samples) == ["WS01", "WS01", "WS01", "WS02"]
    with db.reading() as session:
        assert session.get(SamplingTask, later.id).status == TaskStatus.SCHEDULED.value
        statuses = session.scalars(select(SamplingTask.status).where(SamplingTask.scheduled_on == today)).all()
    assert set(statuses) == {"dispatched"}


def test_dispatching_the_first_task_of_an_approved_plan_activates_the_plan(db, users, site, sampler, registrar):
    from app.sites.models import MonitoringPlan, PlanStatus

    tm = users["technical_manager"]
    today = db.calendar.today()
    with db.transaction() as session:
        plan = MonitoringPlan(code="PL26-00001", title="二季度例行监测", period_start=today,
                              period_end=today + timedelta(days=90), status=PlanStatus.APPROVED.value,
                              created_by_id=tm.id, created_at=registration.utcnow())
        session.add(plan)
    task = make_task(db, tm, site, sampler=sampler)
    with db.transaction() as session:
        session.get(SamplingTask, task.id).plan_id = plan.id
    dispatch(db, registrar, task, site, sampler)
    with db.reading() as session:
        assert session.get(MonitoringPlan, plan.id).status == PlanStatus.ACTIVE.value
        assert "plan.activated" in session.scalars(select(AuditEvent.action)).all()


# ---------------------------------------------------------------- ad hoc


def adhoc(**changes) -> AdhocSample:
    data = dict(client_name="江城化工有限公司", client_contact="王工 13800000000", location_text="厂区总排口",
                parameters=["COD", "NH3-N", "Cu"], scheduled_on=date(2026, 3, 12))
    data.update(changes)
    return AdhocSample(**data)


def test_adhoc_sample_without_site_takes_the_adhoc_code(db, registrar, sampler):
    with db.transaction() as session:
        sample = registration.register_adhoc_sample(session, registrar, adhoc(sampler=sampler.username))
        containers = registration.containers_of(session, [sample.id])[sample.id]
    assert sample.sample_no == "WT-260312-001" and sample.kind == "client" and sample.site_id is None
    assert sample.sampler_id == sampler.id and sample.client_name == "江城化工有限公司"
    assert [c.group_code for c in containers] == ["h2so4", "hno3"]
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "sample.registered")).one()
        assert event.after_data["sample_no"] == "WT-260312-001" and event.actor == registrar.username
        assert [c[0] for c in event.after_data["containers"]] == [c.barcode for c in containers]


def test_adhoc_sample_at_a_site(db, registrar, site):
    with db.transaction() as session:
        sample = registration.register_adhoc_sample(
            session, registrar, adhoc(site_code="ws01", location_text="", scheduled_on=db.calendar.today()))
    assert sample.site_id == site.id and sample.sample_no.startswith("WS01-")


@pytest.mark.parametrize("change, code", [
    ({"client_name": " "}, "invalid_input"),
    ({"parameters": []}, "no_parameters"),
    ({"parameters": ["COD", "Kryptonite"]}, "unknown_parameter"),
    ({"parameters": ["COD", "PM2.5"]}, "mixed_matrix"),
    ({"site_code": "NOPE"}, "site_code_unknown"),
    ({"location_text": ""}, "location_required"),
    ({"sampler": "nobody"}, "sampler_unknown"),
    ({"matrix": "lava"}, "invalid_input"),
    ({"scheduled_on": date(1, 1, 1)}, "invalid_input"),
])
def test_adhoc_refusals_change_nothing(db, registrar, change, code):
    before = counts(db)
    with pytest.raises(Exception) as caught, db.transaction() as session:
        registration.register_adhoc_sample(session, registrar, adhoc(**change))
    assert caught.value.code == code
    assert counts(db) == before


def test_bulk_registers_300_in_few_statements(db, registrar, count_queries):
    rows = [adhoc(client_name=f"客户{i % 7}") for i in range(300)]
    with count_queries() as q, db.transaction() as session:
        samples = registration.register_adhoc_samples(session, registrar, rows)
    assert len(samples) == 300
    assert [s.sample_no for s in samples] == [f"WT-260312-{n:03d}" for n in range(1, 301)]
    # rules, numbers (insert + lock), codes (insert + lock), samples, parameters, containers,
    # audit head + events, roles: independent of the number of rows
    assert q.count <= 16, q.statements
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Container)) == 600
        barcodes = session.scalars(select(Container.barcode)).all()
    assert len(set(barcodes)) == 600 and all(check_digit_ok(b) for b in barcodes)


def test_bulk_is_all_or_nothing_and_lists_every_bad_row(db, registrar):
    rows = [adhoc(), adhoc(parameters=["Kryptonite"]), adhoc(), adhoc(client_name="")]
    before = counts(db)
    with pytest.raises(errors.BulkRowsInvalid) as caught, db.transaction() as session:
        registration.register_adhoc_samples(session, registrar, rows, row_numbers=[2, 3, 4, 5])
    assert [n for n, _zh, _en in caught.value.rows] == [3, 5]
    assert "第 3 行" in caught.value.message("zh_CN") and "row 5" in caught.value.message("en")
    assert counts(db) == before


def test_csv_parsing_numbers_rows_like_a_spreadsheet():
    text = ("client_name,parameters,scheduled_on,location_text\n"
            "甲公司,COD;NH3-N,2026-03-12,排口\n\n"
            "乙公司,Cu,2026-13-01,排口\n")
    with pytest.raises(errors.BulkRowsInvalid) as caught:
        registration.parse_adhoc_csv(text)
    assert [n for n, _z, _e in caught.value.rows] == [4]
    rows, numbers = registration.parse_adhoc_csv(text.replace("2026-13-01", "2026-03-13"))
    assert numbers == [2, 4] and rows[0].parameters == ["COD", "NH3-N"]
    with pytest.raises(errors.BulkRowsInvalid):
        registration.parse_adhoc_csv("name,params\nx,y\n")


# ---------------------------------------------------------------- lookups


def test_container_by_barcode_finds_and_tolerates_case_and_spaces(db, dispatched_task):
    barcode = dispatched_task.barcodes()[1]
    with db.reading() as session:
        assert registration.container_by_barcode(session, barcode).barcode == barcode
        found = registration.container_by_barcode(session, f"  {barcode.lower()[:6]} {barcode.lower()[6:]}\n")
        assert found.sample_id == dispatched_task.routine.id
        assert registration.sample_by_no(session, dispatched_task.routine.sample_no.lower()).id == \
            dispatched_task.routine.id


def test_container_by_barcode_bad_cases(db, dispatched_task, users):
    from tests.instruments.conftest import make_instrument

    make_instrument(db, users["technical_manager"], "JC-UV-001")
    good = dispatched_task.barcodes()[0]
    wrong_digit = good[:-1] + str((int(good[-1]) + 1) % 10)
    swapped = good[:-3] + good[-2] + good[-3] + good[-1]
    unknown = with_check_digit("CT26-9999999")
    cases = {
        wrong_digit: errors.WrongCheckDigit,
        unknown: errors.ContainerNotFound,
        "RM26-00012": errors.NotAContainer,
        "SS26-00003": errors.NotAContainer,
        "TK26-00042": errors.NotAContainer,
        "PL26-00003": errors.NotAContainer,
        dispatched_task.routine.sample_no: errors.NotAContainer,
        "jc-uv-001": errors.NotAContainer,
        "WS01": errors.NotAContainer,
        "CT26-0001234": errors.MalformedBarcode,
        "hello world": errors.MalformedBarcode,
        "": errors.MalformedBarcode,
        "x" * 500: errors.MalformedBarcode,
        "条码": errors.MalformedBarcode,
    }
    if swapped != good:
        cases[swapped] = errors.WrongCheckDigit
    with db.reading() as session:
        for text, error in cases.items():
            with pytest.raises(error) as caught:
                registration.container_by_barcode(session, text)
            assert caught.value.http_status in (404, 422), text
    with db.reading() as session, pytest.raises(errors.NotAContainer) as caught:
        registration.container_by_barcode(session, dispatched_task.routine.sample_no)
    assert "sample number" in caught.value.message("en") and "样品编号" in caught.value.message("zh_CN")
    with db.reading() as session, pytest.raises(errors.WrongCheckDigit) as caught:
        registration.container_by_barcode(session, wrong_digit)
    assert "check digit" in caught.value.message("en")


def test_sample_by_no_unknown(db):
    with db.reading() as session, pytest.raises(errors.SampleNotFound):
        registration.sample_by_no(session, "WS01-260312-999")
