"""The CMA scope and signatory scope pages: lists with filters, htmx fragments and a constant
number of queries; the forms (record, add, import, correct; propose, approve, end) with their
refusals shown beside what was typed and nothing saved; 403 for roles without the permission and
the inspector refused on every post; the nav entries and the quality manager's worklist card."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import func, select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.labtime import DEFAULT_CALENDAR
from app.reports.models import AccreditationCertificate, AccreditationItem, SignatoryScope
from tests.conftest import login

TODAY = DEFAULT_CALENDAR.today()  # the lab day; tests/reports/conftest.py reads it again per test

CSV = b"parameter,method_code,matrix\r\nNH3-N,HJ 535-2009,water\r\nCOD,HJ 828-2017,water\r\n"


def _counts(db) -> tuple[int, ...]:
    """Rows of the scope tables and the scope audit events (signing in is audited too)."""
    with db.reading() as session:
        return (*(session.scalar(select(func.count()).select_from(t)) for t in
                  (AccreditationCertificate, AccreditationItem, SignatoryScope)),
                session.scalar(select(func.count()).select_from(AuditEvent)
                               .where(AuditEvent.action.like("reports.%"))))


def _certificate(db, recorder, items=(), no="210012345678") -> int:
    with db.transaction() as session:
        cert = AccreditationCertificate(certificate_no=no, issued_by="省市场监督管理局", valid_from=date(2024, 1, 1),
                                        valid_to=date(2029, 12, 31), recorded_at=utcnow(), recorded_by_id=recorder.id)
        session.add(cert)
        session.flush()
        for parameter, code, matrix in items:
            session.add(AccreditationItem(certificate_id=cert.id, parameter=parameter, method_code=code,
                                          matrix=matrix, recorded_at=utcnow(), recorded_by_id=recorder.id))
        return cert.id


def _scope(db, users, matrix="air", approved=False) -> int:
    with db.transaction() as session:
        row = SignatoryScope(user_id=users["signatory"].id, matrix=matrix, valid_from=TODAY - timedelta(days=1),
                             basis="CMA 2025", proposed_at=utcnow(), proposed_by_id=users["technical_manager"].id)
        if approved:
            row.approved_at, row.approved_by_id = utcnow(), users["quality_manager"].id
        session.add(row)
        session.flush()
        return row.id


# ---------------------------------------------------------------- the CMA page


def test_the_technical_manager_records_a_certificate_and_its_items(db, client, users):
    token = login(client, "technical-manager")
    page = client.get("/scopes/cma")
    assert page.status_code == 200 and 'action="/scopes/cma/certificates"' in page.text
    answer = client.post("/scopes/cma/certificates", data={
        "csrf_token": token, "certificate_no": "210012345678", "issued_by": "黑龙江省市场监督管理局",
        "valid_from": "2024-01-01", "valid_to": "2029-12-31"})
    assert answer.status_code == 303
    cert_id = int(re.search(r"certificate=(\d+)", answer.headers["location"]).group(1))
    answer = client.post(f"/scopes/cma/certificates/{cert_id}/items", data={
        "csrf_token": token, "parameter": "TP", "method_code": "GB 11893-89", "matrix": "water"})
    assert answer.status_code == 303
    answer = client.post(f"/scopes/cma/certificates/{cert_id}/import", data={"csrf_token": token},
                         files={"file": ("scope.csv", CSV, "text/csv")})
    assert answer.status_code == 303
    page = client.get(f"/scopes/cma?certificate={cert_id}")
    assert 'id="chosen-certificate"' in page.text and 'data-state="in_force"' in page.text
    assert page.text.count("data-item=") == 3
    today = client.get("/scopes/cma?matrix=water&method=hj%20535")
    assert today.text.count("data-item=") == 1 and "HJ 535-2009" in today.text
    fragment = client.get("/scopes/cma?parameter=cod", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and fragment.text.count("data-item=") == 1
    download = client.get(f"/scopes/cma/items.csv?certificate={cert_id}")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.content.decode("utf-8-sig").splitlines() == [
        "parameter,method_code,matrix", "TP,GB 11893-89,water", "NH3-N,HJ 535-2009,water", "COD,HJ 828-2017,water"]
    assert client.get("/scopes/cma/items.csv").content.decode("utf-8-sig").count("\n") == 4
    assert client.get("/scopes/cma?matrix=sea").status_code == 422
    assert client.get("/scopes/cma?certificate=999999").status_code == 404


def test_a_refused_certificate_keeps_what_was_typed(db, client, users):
    token = login(client, "technical-manager")
    before = _counts(db)
    page = client.post("/scopes/cma/certificates", data={
        "csrf_token": token, "certificate_no": "21001234567", "issued_by": "省局", "valid_from": "2024-01-01",
        "valid_to": "2029-12-31"})
    assert page.status_code == 422
    assert 'data-code="cma_certificate_no_invalid"' in page.text
    assert 'value="21001234567"' in page.text and 'value="省局"' in page.text
    assert 'id="record-certificate" open' in page.text
    assert _counts(db) == before


def test_a_refused_csv_lists_every_bad_line_and_saves_nothing(db, client, users):
    cert_id = _certificate(db, users["technical_manager"])
    token = login(client, "technical-manager")
    before = _counts(db)
    data = "检测项目,方法,介质\nNH3-N,HJ 535,水\n=1+1,HJ 828-2017,水\n".encode("gbk")
    page = client.post(f"/scopes/cma/certificates/{cert_id}/import", data={"csrf_token": token},
                       files={"file": ("scope.csv", data, "text/csv")})
    assert page.status_code == 422 and 'data-code="cma_csv_refused"' in page.text
    assert page.text.count("第 2 行") == 1 and page.text.count("第 3 行") == 1  # listed once, not twice
    assert _counts(db) == before
    empty = client.post(f"/scopes/cma/certificates/{cert_id}/import", data={"csrf_token": token})
    assert empty.status_code == 422 and 'data-code="cma_csv_empty"' in empty.text


def test_a_correction_through_the_page(db, client, users):
    cert_id = _certificate(db, users["technical_manager"], [("COD", "HJ 828-2017", "soil")])
    token = login(client, "technical-manager")
    answer = client.post(f"/scopes/cma/certificates/{cert_id}/correct", data={
        "csrf_token": token, "issued_by": "省市场监督管理局", "valid_from": "2024-01-01", "valid_to": "2029-12-31",
        "note": "COD 为水质"}, files={"file": ("scope.csv", CSV, "text/csv")})
    assert answer.status_code == 303
    new_id = int(re.search(r"certificate=(\d+)", answer.headers["location"]).group(1))
    old = client.get(f"/scopes/cma?certificate={cert_id}")
    assert 'data-state="replaced"' in old.text and 'id="add-item"' not in old.text
    refused = client.post(f"/scopes/cma/certificates/{cert_id}/items", data={
        "csrf_token": token, "parameter": "TP", "method_code": "GB 11893-89", "matrix": "water"})
    assert refused.status_code == 409 and 'data-code="cma_certificate_replaced"' in refused.text
    assert client.get(f"/scopes/cma?certificate={new_id}").text.count("data-item=") == 2


def test_the_cma_list_takes_a_constant_number_of_queries(db, client, users, count_queries):
    tm = users["technical_manager"]
    _certificate(db, tm, [("NH3-N", "HJ 535-2009", "water")])
    login(client, "quality-manager")
    with count_queries() as few:
        assert client.get("/scopes/cma").status_code == 200
    _certificate(db, tm, [(f"P{i}", f"HJ {100 + i}-2009", "water") for i in range(20)], no="220012345678")
    _certificate(db, tm, [(f"Q{i}", f"HJ {200 + i}-2019", "soil") for i in range(20)], no="230012345678")
    with count_queries() as many:
        page = client.get("/scopes/cma")
    assert page.text.count("data-certificate=") == 3
    assert many.count == few.count


# ---------------------------------------------------------------- the signatory page


def test_propose_approve_and_end_through_the_pages(db, client, users, nh3n_method):
    token = login(client, "technical-manager")
    page = client.get("/scopes/signatories")
    assert 'id="propose-scope"' in page.text and users["signatory"].printed_name in page.text
    answer = client.post("/scopes/signatories", data={
        "csrf_token": token, "user_id": str(users["signatory"].id), "matrix": "water", "method": "HJ 535-2009",
        "parameter": "NH3-N", "valid_from": TODAY.isoformat(), "valid_to": "", "basis": "CMA 2025 现场评审"})
    assert answer.status_code == 303
    scope_id = int(re.search(r"scope=(\d+)", answer.headers["location"]).group(1))
    page = client.get(f"/scopes/signatories?scope={scope_id}")
    assert 'data-status="proposed"' in page.text and 'id="approve-scope"' not in page.text  # not for the TM
    assert client.post(f"/scopes/signatories/{scope_id}/approve", data={"csrf_token": token}).status_code == 403

    token = login(client, "quality-manager")
    dashboard = client.get("/dashboard")
    assert "/scopes/signatories?status=proposed" in dashboard.text
    page = client.get(f"/scopes/signatories?scope={scope_id}")
    assert 'id="approve-scope"' in page.text and 'id="propose-scope"' not in page.text
    assert client.post(f"/scopes/signatories/{scope_id}/approve", data={"csrf_token": token}).status_code == 303
    again = client.post(f"/scopes/signatories/{scope_id}/approve", data={"csrf_token": token})
    assert again.status_code == 409 and 'data-code="signatory_scope_already_approved"' in again.text
    assert 'data-status="in_force"' in client.get(f"/scopes/signatories?scope={scope_id}").text
    past = client.post(f"/scopes/signatories/{scope_id}/end", data={
        "csrf_token": token, "reason": "调离", "end_on": (TODAY - timedelta(days=1)).isoformat()})
    assert past.status_code == 422 and 'data-code="signatory_scope_end_in_past"' in past.text
    assert 'value="调离"' in past.text
    ended = client.post(f"/scopes/signatories/{scope_id}/end", data={
        "csrf_token": token, "reason": "调离", "end_on": TODAY.isoformat()})
    assert ended.status_code == 303
    page = client.get(f"/scopes/signatories?scope={scope_id}")
    assert 'data-status="ended"' in page.text and 'id="ended"' in page.text and "调离" in page.text


def test_the_technical_manager_ends_a_scope_too(db, client, users):
    scope_id = _scope(db, users, approved=True)
    token = login(client, "technical-manager")
    answer = client.post(f"/scopes/signatories/{scope_id}/end", data={
        "csrf_token": token, "reason": "授权范围调整", "end_on": TODAY.isoformat()})
    assert answer.status_code == 303
    with db.reading() as session:
        assert session.get(SignatoryScope, scope_id).ended_by_id == users["technical_manager"].id


def test_a_refused_proposal_keeps_what_was_typed(db, client, users):
    token = login(client, "technical-manager")
    before = _counts(db)
    page = client.post("/scopes/signatories", data={
        "csrf_token": token, "user_id": str(users["reviewer"].id), "matrix": "water", "method": "",
        "parameter": "", "valid_from": TODAY.isoformat(), "valid_to": "", "basis": "CMA 2025"})
    assert page.status_code == 409 and 'data-code="signatory_role_missing"' in page.text
    assert 'id="propose-scope" open' in page.text and 'value="CMA 2025"' in page.text
    unknown = client.post("/scopes/signatories", data={
        "csrf_token": token, "user_id": str(users["signatory"].id), "method": "HJ 999-2099",
        "valid_from": TODAY.isoformat(), "basis": "CMA"})
    assert unknown.status_code == 404 and 'data-code="signatory_method_not_found"' in unknown.text
    assert _counts(db) == before


def test_the_signatory_list_filters_and_takes_a_constant_number_of_queries(db, client, users, count_queries):
    _scope(db, users, "air")
    login(client, "inspector")
    with count_queries() as few:
        assert client.get("/scopes/signatories").status_code == 200
    for matrix in ("soil", "water", "other"):
        _scope(db, users, matrix, approved=True)
    with count_queries() as many:
        page = client.get("/scopes/signatories")
    assert page.text.count("data-scope=") == 4
    assert many.count == few.count
    assert client.get("/scopes/signatories?status=proposed").text.count("data-scope=") == 1
    fragment = client.get("/scopes/signatories?status=in_force&matrix=soil", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and fragment.text.count("data-scope=") == 1
    assert client.get("/scopes/signatories?status=bogus").status_code == 422


# ---------------------------------------------------------------- who may


def _posts(cert_id: int, scope_id: int) -> list[tuple[str, dict[str, str]]]:
    return [("/scopes/cma/certificates", {"certificate_no": "220012345678", "issued_by": "局",
                                          "valid_from": "2024-01-01", "valid_to": "2029-12-31"}),
            (f"/scopes/cma/certificates/{cert_id}/items", {"parameter": "TP", "method_code": "GB 11893-89",
                                                           "matrix": "water"}),
            (f"/scopes/cma/certificates/{cert_id}/import", {}),
            (f"/scopes/cma/certificates/{cert_id}/correct", {"issued_by": "局", "valid_from": "2024-01-01",
                                                             "valid_to": "2029-12-31"}),
            ("/scopes/signatories", {"user_id": "1", "valid_from": TODAY.isoformat(), "basis": "x"}),
            (f"/scopes/signatories/{scope_id}/approve", {}),
            (f"/scopes/signatories/{scope_id}/end", {"reason": "x", "end_on": TODAY.isoformat()})]


def test_the_inspector_reads_both_pages_and_is_refused_every_post(db, client, users):
    cert_id, scope_id = _certificate(db, users["technical_manager"]), _scope(db, users)
    token = login(client, "inspector")
    for url in ("/scopes/cma", f"/scopes/cma?certificate={cert_id}", "/scopes/cma/items.csv",
                "/scopes/signatories", f"/scopes/signatories?scope={scope_id}"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert not re.search(r'method="post" action="/scopes', page.text), url
    before = _counts(db)
    for url, data in _posts(cert_id, scope_id):
        answer = client.post(url, data={"csrf_token": token, **data}, headers={"Accept": "application/json"})
        assert answer.status_code == 403 and answer.json()["code"] == "inspector_read_only", url
    assert _counts(db) == before


def test_roles_without_the_permission_get_403(db, client, users):
    cert_id, scope_id = _certificate(db, users["technical_manager"]), _scope(db, users)
    before = _counts(db)
    for username, allowed in (("analyst", set()), ("signatory", set()), ("admin", set()),
                              ("quality-manager", {f"/scopes/signatories/{scope_id}/approve",
                                                   f"/scopes/signatories/{scope_id}/end"}),
                              ("technical-manager", {url for url, _ in _posts(cert_id, scope_id)}
                               - {f"/scopes/signatories/{scope_id}/approve"})):
        token = login(client, username)
        for url, data in _posts(cert_id, scope_id):
            if url in allowed:
                continue
            answer = client.post(url, data={"csrf_token": token, **data}, headers={"Accept": "application/json"})
            assert answer.status_code == 403 and answer.json()["code"] == "permission_denied", (username, url)
    assert _counts(db) == before


def test_the_nav_offers_both_pages(client, users):
    login(client, "analyst")
    page = client.get("/dashboard")
    assert 'href="/scopes/cma"' in page.text and 'href="/scopes/signatories"' in page.text


def test_items_no_registered_method_measures_are_marked(db, client, users, nh3n_method):
    """A scope line names the parameter as the lab's methods do, or it never matches a report line."""
    _certificate(db, users["technical_manager"], [("NH3-N", "HJ 535-2009", "water"), ("氨氮", "HJ 535-2009", "water"),
                                                  ("NH3-N", "HJ 535-2009", "soil")])
    login(client, "quality-manager")
    page = client.get("/scopes/cma")
    rows = re.findall(r'<tr data-item="\d+">(.*?)</tr>', page.text, re.S)
    marked = {re.search(r"<td>([^<\s]+)", row).group(1) + ("!" if "data-unregistered" in row else "") for row in rows}
    assert marked == {"NH3-N", "氨氮!", "NH3-N!"}


def test_malformed_input_to_the_scope_routes_never_gives_a_5xx(app, db, users):
    """What tests/test_errors.py sends to every route, sent here as the two managers who get past
    the permission check (the global walk signs in as the admin and the quality manager only)."""
    from tests.test_errors import BAD_IDS, malformed_forms, raw_client
    from tests.test_permissions import endpoints

    cert_id, scope_id = _certificate(db, users["technical_manager"]), _scope(db, users)
    mine = [e for e in endpoints(app) if e.path.startswith("/scopes/")]
    assert len([e for e in mine if e.mutating]) == 7
    failures = []
    for username in ("technical-manager", "quality-manager"):
        client = raw_client(app)
        token = login(client, username)
        for endpoint in mine:
            url = endpoint.url({"certificate_id": cert_id, "scope_id": scope_id})
            if not endpoint.mutating:
                for params in ({"page": "0"}, {"certificate": "abc"}, {"scope": "-1"}, {"matrix": "x" * 500}):
                    if client.get(url, params=params).status_code >= 500:
                        failures.append((username, endpoint, params))
                continue
            sends = [{"data": form} for form in malformed_forms(endpoint).values()] + [
                {"json": {f: "x" * 10_000 for f in endpoint.body}},
                {"content": b"--b\r\nContent-Disposition: form-data\r\n",
                 "headers": {"content-type": "multipart/form-data; boundary=b"}},
                {"files": {"file": ("x.csv", b"\x00\xff" * 1000, "text/csv")}, "data": {}},
                {"files": {"file": ("big.csv", b"a,b,c\n" * 400_000, "text/csv")}, "data": {}}]
            for kwargs in sends:
                headers = {"X-CSRF-Token": token, **kwargs.pop("headers", {})}
                response = client.post(url, headers=headers, **kwargs)
                if response.status_code >= 500:
                    failures.append((username, endpoint, str(kwargs)[:80], response.status_code))
            for bad in BAD_IDS if endpoint.id_params else ():
                response = client.post(endpoint.url(default=bad), headers={"X-CSRF-Token": token},
                                       data={f: "x" for f in endpoint.body})
                if not 400 <= response.status_code < 500:
                    failures.append((username, endpoint, bad, response.status_code))
    assert not failures, failures
