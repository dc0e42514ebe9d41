"""The sites service: proposing, changing, suspending, reactivating and decommissioning a site by
change requests; the decision (reference, note, decider is not the proposer, only once, never
retroactive); the version in force at any moment; the sampling gate. Each refusal changes nothing
and writes no audit event."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import DomainError, InspectorReadOnly, PermissionDenied
from app.samples.preservation import UnknownParameter
from app.sites import errors, service
from app.sites.models import ChangeStatus, Site, SiteChangeRequest, SiteStatus, SiteVersion, SiteVersionParameter
from tests.conftest import make_user, race
from tests.sites.conftest import D, change_site, decided_at, make_site, proposal, reading


@pytest.fixture
def tm(users):
    return users["technical_manager"]


@pytest.fixture
def qm(users):
    return users["quality_manager"]


def counts(db) -> tuple[int, ...]:
    """Rows of every table an act may touch, audit events included."""
    with reading(db) as session:
        return tuple(session.scalar(select(func.count()).select_from(model)) or 0
                     for model in (Site, SiteVersion, SiteVersionParameter, SiteChangeRequest, AuditEvent))


def refused(db, error: type[DomainError], act) -> DomainError:
    """`act(session)` is refused with `error`, and nothing at all changed."""
    before = counts(db)
    with pytest.raises(error) as caught, db.transaction() as session:
        act(session)
    assert counts(db) == before
    assert caught.value.code == error.code
    zh, en = caught.value.message("zh_CN"), caught.value.message("en")
    assert zh != en and "{" not in zh + en, (zh, en)  # every placeholder filled, in both languages
    return caught.value


def propose(db, tm, code="WS01", **fields) -> SiteChangeRequest:
    with db.transaction() as session:
        return service.propose_site(session, tm, code=code, proposal=proposal(**fields), reason="新设监测断面")


def decide(db, qm, request, **kwargs):
    kwargs.setdefault("approve", True)
    kwargs.setdefault("decision_ref", "环监字〔2026〕12号")
    with db.transaction() as session:
        return service.decide_change(session, qm, session.get(SiteChangeRequest, request.id), **kwargs)


def site_of(db, code="WS01") -> Site:
    with reading(db) as session:
        site = service.site_by_code(session, code)
        session.expunge(site)
        return site


def events(db, action: str) -> list[AuditEvent]:
    with reading(db) as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))
        session.expunge_all()
        return rows


# ---------------------------------------------------------------- creating a site


def test_a_proposed_site_becomes_active_with_version_1_when_a_quality_manager_approves_it(db, tm, qm):
    request = propose(db, tm, code=" ws01 ")
    site = site_of(db)
    assert site.code == "WS01" and site.status == SiteStatus.PROPOSED and site.current_version_id is None
    with reading(db) as session:
        assert service.current_version(session, site) is None
        assert service.open_request_of(session, site.id).id == request.id
    [proposed] = events(db, "site.proposed")
    assert json.loads(proposed.after)["request"]["proposed"]["latitude"] == "30.9543210"

    decided = decide(db, qm, request, note="同意设置")
    assert decided.status == ChangeStatus.APPROVED and decided.decided_by_id == qm.id
    assert decided.decision_ref == "环监字〔2026〕12号" and decided.effective_from == decided.decided_at
    site = site_of(db)
    with reading(db) as session:
        version = service.current_version(session, site)
        params = service.parameters_of(session, version.id)
    assert site.status == SiteStatus.ACTIVE and site.current_version_id == version.id == decided.resulting_version_id
    assert (version.version_no, version.status, version.approval_ref) == (1, "active", "环监字〔2026〕12号")
    assert version.latitude == D("30.9543210") and isinstance(version.latitude, D)
    assert version.approved_by_id == qm.id and version.change_request_id == request.id
    assert [(p.parameter, p.frequency) for p in params] == [
        ("pH", "monthly"), ("COD", "monthly"), ("NH3-N", "monthly"), ("TP", "quarterly")]
    [approved] = events(db, "site.change_approved")
    after = json.loads(approved.after)
    assert after["version"]["version_no"] == 1 and after["version"]["longitude"] == "121.4567890"
    assert json.loads(approved.before)["version"] is None


def test_parameters_are_written_as_the_preservation_table_writes_them(db, tm):
    request = propose(db, tm, parameters=[("ph", "monthly"), (" nh3-n ", "weekly"), ("", "")])
    with reading(db) as session:
        content = service.proposal_of(session.get(SiteChangeRequest, request.id))
    assert content["parameters"] == [("pH", "monthly"), ("NH3-N", "weekly")]


@pytest.mark.parametrize(("code", "error"), [
    ("W", errors.MalformedSiteCode), ("-WS01", errors.MalformedSiteCode), ("WS01-", errors.MalformedSiteCode),
    ("WS 01", errors.MalformedSiteCode), ("WS_01", errors.MalformedSiteCode), ("A" * 21, errors.MalformedSiteCode),
    ("黄浦江", errors.MalformedSiteCode), ("", errors.FieldRequired), ("new", errors.ReservedSiteCode),
    ("MAP", errors.ReservedSiteCode), ("requests", errors.ReservedSiteCode), ("WT", errors.ReservedSiteCode),
    ("RM26-00012", errors.ReservedSiteCode),
])
def test_a_site_code_of_the_wrong_form_or_a_reserved_word_is_refused(db, tm, code, error):
    refused(db, error, lambda s: service.propose_site(s, tm, code=code, proposal=proposal(), reason="x"))


def test_codes_of_letters_digits_and_dashes_are_taken(db, tm):
    for code in ("A1", "HP-SONGPU-01", "0123456789ABCDEFGHIJ"):
        propose(db, tm, code=code)
    with reading(db) as session:
        assert {s.code for s in session.scalars(select(Site))} == {"A1", "HP-SONGPU-01", "0123456789ABCDEFGHIJ"}


def test_a_code_in_use_is_refused(db, tm):
    propose(db, tm)
    refused(db, errors.DuplicateSiteCode, lambda s: service.propose_site(
        s, tm, code="ws01", proposal=proposal(), reason="x"))


@pytest.mark.parametrize(("changes", "error"), [
    ({"latitude": D("90.0000001")}, errors.CoordinateOutOfRange),
    ({"latitude": D("-91")}, errors.CoordinateOutOfRange),
    ({"longitude": D("180.5")}, errors.CoordinateOutOfRange),
    ({"longitude": D("121.45678901")}, errors.TooManyDecimals),
    ({"latitude": D("NaN")}, errors.BadCoordinate),
    ({"latitude": D("Infinity")}, errors.BadCoordinate),
    ({"latitude": 30.95}, errors.BadCoordinate),  # a float has lost what was typed
    ({"latitude": "north"}, errors.BadCoordinate),
    ({"kind": "lake"}, errors.UnknownChoice),
    ({"water_body": "sea"}, errors.UnknownChoice),
    ({"name_zh": "  "}, errors.FieldRequired),
    ({"name_zh": "名" * 201}, errors.FieldTooLong),
    ({"basin": "x" * 121}, errors.FieldTooLong),
    ({"parameters": [("Unobtainium", "monthly")]}, UnknownParameter),
    ({"parameters": [("COD", "hourly")]}, errors.UnknownChoice),
    ({"parameters": [("COD", "monthly"), ("cod", "weekly")]}, errors.DuplicateParameter),
    ({"parameters": [("pH", "monthly"), ("PM2.5", "monthly")]}, errors.ParameterNotForKind),
    ({"kind": "ambient_air", "parameters": [("COD", "monthly")]}, errors.ParameterNotForKind),
    ({"parameters": [("COD",)]}, errors.FieldRequired),
])
def test_an_invalid_proposal_is_refused_and_nothing_is_recorded(db, tm, changes, error):
    refused(db, error, lambda s: service.propose_site(s, tm, code="WS01", proposal=proposal(**changes), reason="x"))


def test_coordinates_keep_their_digits_and_lose_only_trailing_zeros_beyond_seven(db, tm):
    request = propose(db, tm, latitude=D("30.954321000"), longitude=D("121.4"))
    with reading(db) as session:
        content = service.proposal_of(session.get(SiteChangeRequest, request.id))
    assert str(content["latitude"]) == "30.9543210" and str(content["longitude"]) == "121.4"
    assert service.parse_coordinate(" 31.5° ", "latitude") == D("31.5")
    assert str(service.parse_coordinate(D("-0"), "longitude")) == "0"


def test_an_air_station_takes_air_parameters_and_an_other_site_anything(db, tm):
    propose(db, tm, code="AQ01", kind="ambient_air", water_body="", parameters=[("PM2.5", "weekly"), ("SO2", "weekly")])
    propose(db, tm, code="X01", kind="other", parameters=[("COD", "annual"), ("PM10", "annual")])


def test_a_reason_is_required_and_only_the_technical_manager_proposes(db, users, tm):
    refused(db, errors.ReasonRequired, lambda s: service.propose_site(s, tm, code="WS01", proposal=proposal(),
                                                                      reason="  "))
    for role, error in (("quality_manager", PermissionDenied), ("sampler", PermissionDenied),
                        ("inspector", InspectorReadOnly)):
        refused(db, error, lambda s, role=role: service.propose_site(s, users[role], code="WS01",
                                                                     proposal=proposal(), reason="x"))


# ---------------------------------------------------------------- deciding


def test_the_proposer_may_not_decide_even_holding_both_roles(db, qm):
    both = make_user(db, "tm-and-qm", "technical_manager", "quality_manager")
    request = propose(db, both)
    refused(db, errors.DeciderIsProposer, lambda s: service.decide_change(
        s, both, s.get(SiteChangeRequest, request.id), approve=True, decision_ref="环监字〔2026〕12号"))
    refused(db, errors.DeciderIsProposer, lambda s: service.decide_change(
        s, both, s.get(SiteChangeRequest, request.id), approve=False, decision_ref="", note="不同意"))
    assert decide(db, qm, request).status == ChangeStatus.APPROVED


def test_only_a_quality_manager_decides(db, users, tm):
    request = propose(db, tm)
    for role, error in (("technical_manager", PermissionDenied), ("sampler", PermissionDenied),
                        ("inspector", InspectorReadOnly)):
        refused(db, error, lambda s, role=role: service.decide_change(
            s, users[role], s.get(SiteChangeRequest, request.id), approve=True, decision_ref="环监字〔2026〕12号"))


def test_an_approval_needs_the_reference_and_a_rejection_a_note(db, tm, qm):
    request = propose(db, tm)

    def act(**kwargs):
        return lambda s: service.decide_change(s, qm, s.get(SiteChangeRequest, request.id), **kwargs)

    refused(db, errors.DecisionRefRequired, act(approve=True, decision_ref="  "))
    refused(db, errors.FieldTooLong, act(approve=True, decision_ref="号" * 121))
    refused(db, errors.RejectionNoteRequired, act(approve=False, decision_ref=""))
    rejected = decide(db, qm, request, approve=False, decision_ref="", note="位置不具代表性")
    assert (rejected.status, rejected.decision_note) == (ChangeStatus.REJECTED, "位置不具代表性")
    site = site_of(db)
    assert site.status == SiteStatus.PROPOSED
    with reading(db) as session:
        assert service.latest_version(session, site.id) is None
    assert len(events(db, "site.change_rejected")) == 1


def test_a_decided_or_withdrawn_request_cannot_be_decided_again(db, users, tm, qm):
    first = propose(db, tm)
    decide(db, qm, first)
    for decider in (qm, users["quality_manager_2"]):
        refused(db, errors.RequestAlreadyDecided, lambda s, decider=decider: service.decide_change(
            s, decider, s.get(SiteChangeRequest, first.id), approve=False, decision_ref="", note="再决定一次"))
    second = propose(db, tm, code="WS02")
    with db.transaction() as session:
        withdrawn = service.withdraw_change(session, tm, session.get(SiteChangeRequest, second.id), "重复申请")
    assert (withdrawn.status, withdrawn.decided_by_id, withdrawn.decision_note) == ("withdrawn", tm.id, "重复申请")
    refused(db, errors.RequestAlreadyDecided, lambda s: service.decide_change(
        s, qm, s.get(SiteChangeRequest, second.id), approve=True, decision_ref="环监字〔2026〕12号"))
    refused(db, errors.RequestAlreadyDecided, lambda s: service.withdraw_change(
        s, tm, s.get(SiteChangeRequest, second.id)))


def test_only_the_proposer_withdraws(db, tm):
    other = make_user(db, "tm-2", "technical_manager")
    request = propose(db, tm)
    refused(db, errors.NotTheProposer,
            lambda s: service.withdraw_change(s, other, s.get(SiteChangeRequest, request.id)))


def test_a_withdrawn_or_rejected_creation_may_be_proposed_again(db, tm, qm):
    request = propose(db, tm)
    decide(db, qm, request, approve=False, decision_ref="", note="坐标有误")
    site = site_of(db)
    with db.transaction() as session:
        again = service.propose_change(session, tm, session.get(Site, site.id), kind="create",
                                       proposal=proposal(latitude=D("30.96")), reason="坐标已更正")
    decide(db, qm, again)
    with reading(db) as session:
        assert service.current_version(session, site).latitude == D("30.96")


def test_the_effective_time_is_never_before_the_decision(db, tm, qm):
    request = propose(db, tm)
    refused(db, errors.RetroactiveChange, lambda s: service.decide_change(
        s, qm, s.get(SiteChangeRequest, request.id), approve=True, decision_ref="环监字〔2026〕12号",
        effective_from=utcnow() - timedelta(hours=1)))
    later = utcnow() + timedelta(days=2)
    decide(db, qm, request, effective_from=later)
    site = site_of(db)
    assert site.status == SiteStatus.PROPOSED  # approved, not yet in force
    with reading(db) as session:
        assert service.current_version(session, site) is None
        assert service.version_at(session, site.id, later).version_no == 1
        assert service.sync_site_states(session) == 0
    with db.transaction() as session:
        assert service.sync_site_states(session, later + timedelta(seconds=1)) == 1
    assert site_of(db).status == SiteStatus.ACTIVE


def test_a_change_cannot_take_effect_before_the_latest_version(db, tm, qm):
    site = make_site(db, tm, qm)
    later = utcnow() + timedelta(days=10)
    change_site(db, tm, qm, site, basin="黄浦江上游", effective_from=later)
    with db.transaction() as session:
        request = service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                                         reason="河道施工")
    refused(db, errors.EffectiveBeforeLatest, lambda s: service.decide_change(
        s, qm, s.get(SiteChangeRequest, request.id), approve=True, decision_ref="环监字〔2026〕31号",
        effective_from=utcnow() + timedelta(days=5)))


def test_only_one_open_request_per_site(db, tm, qm):
    site = make_site(db, tm, qm)
    with db.transaction() as session:
        open_one = service.propose_change(session, tm, session.get(Site, site.id), kind="change",
                                          proposal=proposal(basin="黄浦江上游"), reason="更正流域")
    error = refused(db, errors.RequestAlreadyOpen, lambda s: service.propose_change(
        s, tm, s.get(Site, site.id), kind="suspend", proposal=None, reason="施工"))
    assert f"#{open_one.id}" in error.message("en")


# ---------------------------------------------------------------- changes and the version history


def test_a_change_makes_the_next_version_and_the_old_one_stays_as_it_was(db, tm, qm):
    site = make_site(db, tm, qm)
    request = change_site(db, tm, qm, site, latitude=D("30.9550000"), parameters=[("pH", "weekly"), ("TN", "monthly")])
    with reading(db) as session:
        versions = list(session.scalars(select(SiteVersion).where(SiteVersion.site_id == site.id)
                                        .order_by(SiteVersion.version_no)))
        params = service.parameters_of_versions(session, [v.id for v in versions])
    assert [v.version_no for v in versions] == [1, 2]
    assert versions[0].latitude == D("30.9543210") and versions[1].latitude == D("30.9550000")
    assert [(p.parameter, p.frequency) for p in params[versions[0].id]][:1] == [("pH", "monthly")]
    assert [(p.parameter, p.frequency) for p in params[versions[1].id]] == [("pH", "weekly"), ("TN", "monthly")]
    assert versions[1].approval_ref == "环监字〔2026〕30号" and request.resulting_version_id == versions[1].id
    assert site_of(db).current_version_id == versions[1].id
    [approved] = events(db, "site.change_approved")[-1:]
    assert json.loads(approved.before)["version"]["latitude"] == "30.9543210"
    assert json.loads(approved.after)["version"]["latitude"] == "30.9550000"


def test_a_change_that_changes_nothing_is_refused(db, tm, qm):
    site = make_site(db, tm, qm)
    same = proposal(latitude=D("30.954321"), parameters=[("TP", "quarterly"), ("NH3-N", "monthly"),
                                                          ("COD", "monthly"), ("pH", "monthly")])
    refused(db, errors.NothingChanged, lambda s: service.propose_change(
        s, tm, s.get(Site, site.id), kind="change", proposal=same, reason="x"))
    refused(db, errors.ProposalRequired, lambda s: service.propose_change(
        s, tm, s.get(Site, site.id), kind="change", proposal=None, reason="x"))
    refused(db, errors.UnknownChoice, lambda s: service.propose_change(
        s, tm, s.get(Site, site.id), kind="move", proposal=same, reason="x"))


def test_suspend_reactivate_and_decommission_follow_the_site_states(db, tm, qm):
    site = make_site(db, tm, qm)

    def not_allowed(kind: str) -> None:
        refused(db, errors.ChangeNotAllowed, lambda s: service.propose_change(
            s, tm, s.get(Site, site.id), kind=kind, proposal=None, reason="x"))

    not_allowed("reactivate")
    not_allowed("create")
    change_site(db, tm, qm, site, kind="suspend", reason="河道施工暂停监测")
    assert site_of(db).status == SiteStatus.SUSPENDED
    not_allowed("suspend")
    change_site(db, tm, qm, site, kind="reactivate", reason="施工结束")
    assert site_of(db).status == SiteStatus.ACTIVE
    change_site(db, tm, qm, site, kind="decommission", reason="断面撤销")
    assert site_of(db).status == SiteStatus.DECOMMISSIONED
    for kind in ("change", "suspend", "reactivate", "decommission", "create"):
        not_allowed(kind)
    with reading(db) as session:
        versions = list(session.scalars(select(SiteVersion).where(SiteVersion.site_id == site.id)
                                        .order_by(SiteVersion.version_no)))
        params = service.parameters_of_versions(session, [v.id for v in versions])
    assert [v.status for v in versions] == ["active", "suspended", "active", "decommissioned"]
    # a status change keeps everything else of the version it follows
    kept = {(v.latitude, v.name_zh, len(params[v.id])) for v in versions}
    assert kept == {(D("30.9543210"), "黄浦江松浦大桥断面", 4)}


def test_version_at_picks_the_version_in_force_at_each_moment(db, tm, qm):
    t0 = utcnow() - timedelta(days=300)
    site = make_site(db, tm, qm, since=t0)
    t1, t2, t3 = t0 + timedelta(days=100), t0 + timedelta(days=200), t0 + timedelta(days=250)
    change_site(db, tm, qm, site, at=t1, latitude=D("30.96"))
    change_site(db, tm, qm, site, at=t2, kind="suspend")
    change_site(db, tm, qm, site, at=t3, kind="reactivate")
    other = make_site(db, tm, qm, "WS02", since=t1 + timedelta(days=1))
    with reading(db) as session:
        def at(moment):
            version = service.version_at(session, site.id, moment)
            return version and version.version_no

        assert at(t0 - timedelta(seconds=1)) is None
        assert [at(t0), at(t1 - timedelta(microseconds=1)), at(t1), at(t2 + timedelta(days=1)), at(utcnow())] == [
            1, 1, 2, 3, 4]
        many = service.versions_at(session, [site.id, other.id, 999], t1 + timedelta(hours=1))
        assert {k: v.version_no for k, v in many.items()} == {site.id: 2}
        many = service.versions_at(session, [site.id, other.id], utcnow())
        assert {k: v.version_no for k, v in many.items()} == {site.id: 4, other.id: 1}
        assert service.versions_at(session, [], utcnow()) == {}


def test_versions_at_costs_one_query_for_many_sites(db, tm, qm, count_queries):
    sites = [make_site(db, tm, qm, f"WS{n:02d}") for n in range(6)]
    change_site(db, tm, qm, sites[0], basin="改")
    with reading(db) as session, count_queries() as counter:
        found = service.versions_at(session, [s.id for s in sites], utcnow())
    assert counter.count == 1 and len(found) == 6 and found[sites[0].id].version_no == 2


# ---------------------------------------------------------------- the sampling gate


def test_the_gate_refuses_a_site_not_active_at_the_time_of_sampling(db, tm, qm):
    t0 = utcnow() - timedelta(days=30)
    site = make_site(db, tm, qm, since=t0)
    suspended_at = t0 + timedelta(days=10)
    change_site(db, tm, qm, site, kind="suspend", at=suspended_at)
    with reading(db) as session:
        assert service.assert_site_usable(session, site, t0 + timedelta(days=1)).version_no == 1
        with pytest.raises(errors.SiteNotYetActive) as early:
            service.assert_site_usable(session, site, t0 - timedelta(days=1))
        with pytest.raises(errors.SiteNotActive) as late:
            service.assert_site_usable(session, site, suspended_at + timedelta(hours=1))
    assert "WS01" in early.value.message("zh_CN") and "暂停" in late.value.message("zh_CN")
    assert "suspended" in late.value.message("en") and "v2" in late.value.message("en")
    propose(db, tm, code="WS09")
    proposed = site_of(db, "WS09")
    with reading(db) as session, pytest.raises(errors.SiteNotYetActive):
        service.assert_site_usable(session, proposed, utcnow())


def test_site_by_code_finds_upper_and_lower_case_and_refuses_unknown(db, tm, qm):
    make_site(db, tm, qm)
    with reading(db) as session:
        assert service.site_by_code(session, " ws01").code == "WS01"
        for code in ("WS02", "", "x" * 200, "%", None):
            with pytest.raises(errors.SiteNotFound):
                service.site_by_code(session, code)


# ---------------------------------------------------------------- concurrency (PostgreSQL)


def test_two_concurrent_decisions_only_one_wins(pg_db, users, tm):
    request = propose(pg_db, tm)
    qm1, qm2 = users["quality_manager"], users["quality_manager_2"]

    def approve(session):
        return service.decide_change(session, qm1, session.get(SiteChangeRequest, request.id), approve=True,
                                     decision_ref="环监字〔2026〕12号").status

    def reject(session):
        return service.decide_change(session, qm2, session.get(SiteChangeRequest, request.id), approve=False,
                                     decision_ref="", note="不同意").status

    results = race(pg_db, approve, reject)
    assert sum(isinstance(r, errors.RequestAlreadyDecided) for r in results) == 1, results
    won = next(r for r in results if not isinstance(r, Exception))
    with reading(pg_db) as session:
        row = session.get(SiteChangeRequest, request.id)
        versions = session.scalar(select(func.count()).select_from(SiteVersion)) or 0
        decisions = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("site.change_approved", "site.change_rejected"))))
    assert row.status == won and decisions == 1
    assert versions == (1 if won == "approved" else 0)


def test_two_concurrent_proposals_on_one_site_only_one_is_open(pg_db, tm, qm):
    site = make_site(pg_db, tm, qm)

    def suspend(session):
        return service.propose_change(session, tm, session.get(Site, site.id), kind="suspend", proposal=None,
                                      reason="施工").id

    def change(session):
        return service.propose_change(session, tm, session.get(Site, site.id), kind="change",
                                      proposal=proposal(basin="改"), reason="更正").id

    results = race(pg_db, suspend, change)
    assert sum(isinstance(r, errors.RequestAlreadyOpen) for r in results) == 1, results
    with reading(pg_db) as session:
        assert session.scalar(select(func.count()).select_from(SiteChangeRequest).where(
            SiteChangeRequest.status == "submitted")) == 1


def test_two_concurrent_proposals_of_one_code_only_one_is_made(pg_db, tm):
    def make(session):
        return service.propose_site(session, tm, code="WS01", proposal=proposal(), reason="新设").id

    results = race(pg_db, make, make)
    assert sum(isinstance(r, int) for r in results) == 1, results
    with reading(pg_db) as session:
        assert session.scalar(select(func.count()).select_from(Site)) == 1


def test_decided_at_sets_only_the_sites_clock(db, tm, qm):
    past = utcnow() - timedelta(days=3)
    with decided_at(past):
        assert service.utcnow() == past
    site = make_site(db, tm, qm, since=past)
    with reading(db) as session:
        assert service.current_version(session, site).valid_from == past
