"""The reference-materials JSON API with real API tokens: the list over units, solutions and
reagents (paginated, a barcode on every item, the same query count for 3 and 30 items), the
detail of each kind with its values and uncertainty as strings, usability now and at a moment,
and refusals as problem JSON (bad time 422, unknown barcode 404, no credentials 401)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import pytest
from fastapi.testclient import TestClient

from app.core.units import PRECISION
from app.people import service as people
from app.people.models import User
from app.reference_materials.dilution import (
    Device,
    DilutionStep,
    ParentValue,
    dilute,
    expanded_for_display,
)
from tests.conftest import login, make_user
from tests.reference_materials.conftest import D, ago, make_lot, make_material, open_unit, prepare, receive
from tests.reference_materials.test_queries import reagent, stock_shelf, used_up

BASE = "/api/v1/reference-materials/items"


@pytest.fixture
def api(app):
    """A client without cookies: whatever it does, it does with its bearer token alone."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def users(db) -> dict[str, User]:
    """Only the roles these tests act in (each user costs a password hash)."""
    return {role: make_user(db, role.replace("_", "-"), role) for role in ("technical_manager", "analyst")}


@pytest.fixture
def token(db, users) -> dict[str, str]:
    """The analyst's Authorization header (MATERIALS_READ, as every user)."""
    with db.transaction() as session:
        secret = people.create_token(session, None, users["analyst"].id, "bench import", check_permission=False)[1]
    return {"Authorization": f"Bearer {secret}"}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["code"] == code, body
    return body


def no_json_numbers_but_counts(body: dict) -> None:
    """Values travel as strings: the only numbers in an item's JSON are page counters."""
    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert key in ("page", "per_page", "size", "total", "pages"), (key, value)

    walk(body)


# ---------------------------------------------------------------- the list


def test_the_list_is_paginated_and_every_item_has_its_barcode(api, db, token, technical, store):
    shelf = stock_shelf(db, technical, store)
    first = api.get(BASE, params={"per_page": 10}, headers=token)
    assert first.status_code == 200, first.text
    page = first.json()
    total = len(shelf.all)
    assert {k: page[k] for k in ("page", "per_page", "size", "total", "pages")} == {
        "page": 1, "per_page": 10, "size": 10, "total": total, "pages": -(-total // 10)}
    seen = []
    for number in range(1, page["pages"] + 1):
        body = api.get(BASE, params={"per_page": 10, "page": number}, headers=token).json()
        assert all(item["barcode"] for item in body["items"])
        seen += [item["barcode"] for item in body["items"]]
        no_json_numbers_but_counts(body)
    assert seen == sorted(shelf.all)  # every item once, by barcode
    by_code = {item["barcode"]: item for n in range(1, page["pages"] + 1)
               for item in api.get(BASE, params={"per_page": 10, "page": n}, headers=token).json()["items"]}
    sealed = by_code[shelf.units["sealed"]]
    assert sealed["kind"] == "unit" and sealed["state"] == "received" and sealed["name"] == "水中氨氮溶液标准物质"
    assert sealed["usable_now"] is False and sealed["reason"] == "not_opened"
    assert sealed["remaining"] == "100" and sealed["certificate_no"] == "GBW(E)081601"
    solution = by_code[shelf.units["solution"]]
    assert solution["kind"] == "solution" and solution["usable_now"] is True and solution["reason"] is None
    assert by_code[shelf.units["expired_solution"]]["reason"] == "expired"
    assert by_code[shelf.units["used_up"]]["reason"] == "used_up"
    assert by_code[shelf.units["held"]]["reason"] == "quarantined"
    reagent_item = by_code[shelf.units["reagent"]]
    assert reagent_item["kind"] == "reagent" and reagent_item["usable_now"] is True
    assert reagent_item["expires_at"].endswith(("Z", "+00:00"))

    def barcodes(**params) -> list[str]:
        response = api.get(BASE, params={"per_page": "200", **params}, headers=token)
        assert response.status_code == 200, response.text
        return [item["barcode"] for item in response.json()["items"]]

    assert barcodes(kind="reagent") == sorted(b for b in shelf.all if b.startswith("RG"))
    assert barcodes(kind="solution", state="used_up") == [shelf.units["used_up_solution"]]
    sized = api.get(BASE, params={"size": 3}, headers=token).json()  # the instruments' name for per_page
    assert [item["barcode"] for item in sized["items"]] == sorted(shelf.all)[:3] and sized["per_page"] == 3


@pytest.mark.parametrize("params", [{"per_page": "201"}, {"per_page": "0"}, {"page": "0"}, {"kind": "boat"},
                                    {"state": "lost"}])
def test_the_list_refuses_bad_parameters(api, token, params):
    problem(api.get(BASE, params=params, headers=token), 422, "validation_error")


def test_the_list_costs_the_same_queries_for_3_and_30_items(api, db, token, technical, store, count_queries):
    def statements() -> tuple[int, int]:
        with count_queries() as counter:
            response = api.get(BASE, params={"per_page": 200}, headers=token)
        assert response.status_code == 200, response.text
        return counter.count, response.json()["total"]

    material = make_material(db, technical)
    lot = make_lot(db, technical, store, material)
    first = receive(db, technical, lot, count=2, quantity="100")
    open_unit(db, technical, first[0])
    prepare(db, technical, first[0].barcode)
    few, total = statements()
    assert total == 3
    units = receive(db, technical, make_lot(db, technical, store, material, lot_no="B2402"), count=20,
                    quantity="100")
    for unit in units[:3]:
        open_unit(db, technical, unit)
        prepare(db, technical, unit.barcode)
    for n in range(4):
        reagent(db, technical, expires_in_days=100 + n, name=f"试剂{n}")
    many, total = statements()
    assert total == 30
    assert many == few


def test_tokens_and_browser_sessions_are_accepted_anonymous_callers_are_not(api, client, db, token, users,
                                                                           opened_unit):
    assert api.get(f"{BASE}/{opened_unit.barcode}", headers=token).status_code == 200
    assert api.get(BASE, headers=token).status_code == 200
    problem(api.get(BASE), 401, "not_authenticated")
    problem(api.get(f"{BASE}/{opened_unit.barcode}"), 401, "not_authenticated")
    problem(api.get(BASE, headers={"Authorization": "Bearer lims_nonsense"}), 401, "invalid_token")
    login(client, "analyst")
    assert client.get(f"{BASE}/{opened_unit.barcode}").status_code == 200


# ---------------------------------------------------------------- the detail


def test_a_unit_gives_its_certificate_values_lot_and_stock(api, token, opened_unit):
    response = api.get(f"{BASE}/{opened_unit.barcode.lower()}", headers=token)  # a scanner in lower case
    assert response.status_code == 200, response.text
    detail = response.json()
    no_json_numbers_but_counts(detail)
    assert detail["barcode"] == opened_unit.barcode and detail["kind"] == "unit"
    assert detail["name"] == "水中氨氮溶液标准物质" and detail["name_en"] == "Ammonia nitrogen in water"
    assert detail["certificate_no"] == "GBW(E)081601" and detail["lot_no"] == "B2309"
    assert detail["lot_status"] == "active" and detail["state"] == "in_use"
    assert detail["quantity"] == "20" and detail["remaining"] == "20" and detail["quantity_unit"] == "mL"
    assert detail["certified_values"] == [
        {"analyte": "NH3-N", "value": "1000", "unit": "mg/L", "expanded_uncertainty": "7", "coverage_factor": "2",
         "certified": True},
        {"analyte": "pH", "value": "2.0", "unit": "mg/L", "expanded_uncertainty": None, "coverage_factor": None,
         "certified": False},
    ]
    assert detail["components"] == []
    assert detail["usable_now"] is True and detail["reason"] is None and detail["message"] is None
    expires = datetime.fromisoformat(detail["expires_at"].replace("Z", "+00:00"))
    assert expires == opened_unit.expires_at
    assert detail["opened_at"] is not None and detail["prepared_at"] is None


def test_a_two_step_solution_gives_the_concentration_and_uncertainty_of_the_dilutions(api, db, token, technical,
                                                                                    opened_unit):
    stock = prepare(db, technical, opened_unit.barcode, aliquot="10", final_volume="100", prepared_at=ago(days=10))
    working = prepare(db, technical, stock.barcode, aliquot="5", final_volume="50", prepared_at=ago(days=5),
                      name="氨氮标准使用液", output_unit="μg/mL",
                      devices=(service_device("aliquot", "5 mL 单标线吸量管", "0.015"),
                               service_device("final_volume", "50 mL 单标线容量瓶", "0.05")))
    # the same two steps computed independently with the pure dilution functions
    pipette_10, flask_100 = Device("pipette", D("0.020"), "mL", "A"), Device("flask", D("0.10"), "mL", "A")
    pipette_5, flask_50 = Device("pipette", D("0.015"), "mL", "A"), Device("flask", D("0.05"), "mL", "A")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        crm = ParentValue("NH3-N", D("1000"), "mg/L", D("7") / D("2") / D("1000"))
    first = dilute(crm, DilutionStep(D("10"), "mL", D("100"), "mL", (pipette_10,), (flask_100,)), "mg/L")
    second = dilute(ParentValue("NH3-N", first.concentration, first.unit, first.relative_u),
                    DilutionStep(D("5"), "mL", D("50"), "mL", (pipette_5,), (flask_50,)), "μg/mL")

    response = api.get(f"{BASE}/{working.barcode}", headers=token)
    assert response.status_code == 200, response.text
    detail = response.json()
    no_json_numbers_but_counts(detail)
    assert detail["kind"] == "solution" and detail["name"] == "氨氮标准使用液"
    assert detail["parent_barcode"] == stock.barcode and detail["certificate_no"] == "GBW(E)081601"
    assert detail["certified_values"] == []
    [component] = detail["components"]
    assert component["analyte"] == "NH3-N" and component["unit"] == "μg/mL"
    assert Decimal(component["concentration"]) == second.concentration == D("10")
    assert Decimal(component["relative_standard_uncertainty"]) == second.relative_u
    with localcontext() as ctx:
        ctx.prec = PRECISION
        expected_u = second.concentration * second.relative_u
        assert Decimal(component["standard_uncertainty"]) == expected_u
        assert Decimal(component["expanded_uncertainty"]) == 2 * expected_u
    assert component["coverage_factor"] == "2"
    assert (component["concentration_display"], component["expanded_uncertainty_display"]) == \
        expanded_for_display(second.concentration, second.relative_u)
    assert len(component["expanded_uncertainty"]) > 20  # full precision, not the rounded figure
    assert second.relative_u > first.relative_u  # the second step adds to the uncertainty
    assert detail["usable_now"] is True and detail["remaining"] == "50" and detail["quantity_unit"] == "mL"
    stock_detail = api.get(f"{BASE}/{stock.barcode}", headers=token).json()
    assert Decimal(stock_detail["components"][0]["concentration"]) == first.concentration
    assert stock_detail["remaining"] == "95"  # 100 mL less the 5 mL aliquot
    # the raw JSON has no number where a value belongs
    assert '"concentration":"' in response.text.replace(" ", "")


def service_device(role: str, name: str, tolerance: str):
    from app.reference_materials.solutions import DeviceFacts

    return DeviceFacts(role, name, D(tolerance), "mL", "A")


def test_a_reagent_gives_its_grade_supplier_and_expiry(api, db, token, technical):
    barcode = reagent(db, technical, expires_in_days=200, received_days_ago=3)
    detail = api.get(f"{BASE}/{barcode}", headers=token).json()
    assert detail["kind"] == "reagent" and detail["name"] == "盐酸" and detail["grade"] == "优级纯 GR"
    assert detail["supplier"] == "国药集团化学试剂有限公司" and detail["lot_no"] == "R+200"
    assert detail["certificate_no"] == "" and detail["lot_status"] is None
    assert detail["certified_values"] == [] and detail["components"] == []
    assert detail["state"] == "in_stock" and detail["remaining"] == "500"
    assert detail["usable_now"] is True  # a sealed reagent may be used (opening is recorded separately)
    expires = datetime.fromisoformat(detail["expires_at"].replace("Z", "+00:00"))
    assert expires == db.calendar.start_of(db.calendar.today() + timedelta(days=201))


def test_unusable_items_say_why(api, db, token, technical, store):
    shelf = stock_shelf(db, technical, store)
    expected = {"expired_solution": "expired", "sealed": "not_opened", "used_up": "used_up",
                "held": "quarantined", "withdrawn": "withdrawn"}
    for name, reason in expected.items():
        detail = api.get(f"{BASE}/{shelf.units[name]}", headers=token).json()
        assert detail["usable_now"] is False and detail["reason"] == reason, (name, detail)
        assert shelf.units[name] in detail["message"]
    sealed = api.get(f"{BASE}/{shelf.units['sealed']}", headers=token).json()
    assert "尚未开封" in sealed["message"]  # the lab's language (zh_CN in these tests)


def test_usability_at_a_moment_is_the_gate_at_the_time_of_use(api, db, token, technical, store):
    material = make_material(db, technical, opened_shelf_life_days=7)
    unit = receive(db, technical, make_lot(db, technical, store, material), quantity="100",
                   received_at=ago(days=40))[0]
    open_unit(db, technical, unit, ago(days=30))  # expired 23 days ago (7 days after opening)
    url = f"{BASE}/{unit.barcode}"

    def at(moment: datetime) -> dict:
        response = api.get(url, params={"at": moment.isoformat()}, headers=token)
        assert response.status_code == 200, response.text
        return response.json()

    now = api.get(url, headers=token).json()
    assert now["usable_now"] is False and now["reason"] == "expired"
    then = ago(days=28)
    valid = at(then)
    assert valid["usable_now"] is True and valid["reason"] is None
    assert datetime.fromisoformat(valid["at"].replace("Z", "+00:00")) == then
    assert at(ago(days=35))["reason"] == "not_opened"
    assert at(ago(days=45))["reason"] == "not_received"
    assert at(ago(days=20))["reason"] == "expired"
    # the same moment in the lab's offset, and "+" left unencoded (it arrives as a space)
    local = then.astimezone(db.calendar.tz).replace(microsecond=0)
    assert at(local)["usable_now"] is True
    raw = api.get(f"{url}?at={local.isoformat()}", headers=token)
    assert raw.status_code == 200 and raw.json()["usable_now"] is True, raw.text
    solution = prepare(db, technical, open_unit(db, technical, receive(
        db, technical, make_lot(db, technical, store, material, lot_no="B2310"), quantity="100")[0],
        ago(days=3)).barcode, prepared_at=ago(days=2))
    used_up(db, technical, solution.barcode, ago(days=1))
    assert at_solution(api, token, solution.barcode, ago(days=1, hours=12))["usable_now"] is True
    assert at_solution(api, token, solution.barcode, ago(hours=1))["reason"] == "used_up"


def at_solution(api, token, barcode: str, moment: datetime) -> dict:
    response = api.get(f"{BASE}/{barcode}", params={"at": moment.isoformat()}, headers=token)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("bad", ["2026-03-01T10:00:00", "2026-03-01", "yesterday", "2026-13-01T00:00:00Z",
                                 "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59Z", "1899-12-31T00:00:00Z",
                                 "2026-03-01T10:00:00+25:00", "x" * 65])
def test_a_bad_moment_is_refused_with_422(api, token, opened_unit, bad):
    response = api.get(f"{BASE}/{opened_unit.barcode}", params={"at": bad}, headers=token)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("invalid_time", "validation_error")
    if len(bad) <= 64:
        body = problem(response, 422, "invalid_time")
        assert "ISO 8601" in body["detail"]


@pytest.mark.parametrize("barcode", ["RM26-99999", "SS26-00001", "RG99-12345", "hello", "RM26-1", "RM26-00001/x",
                                     "..%2F..%2Fetc", "条码", "RM26-00001%20OR%201=1", "x" * 300, "%25"])
def test_an_unknown_or_malformed_barcode_is_404_problem_json(api, token, barcode):
    body = problem(api.get(f"{BASE}/{barcode}", headers=token), 404, "item_not_found")
    assert body["status"] == 404


def test_a_nul_in_the_barcode_is_refused_not_a_server_error(api, token):
    response = api.get(f"{BASE}/RM26-00001%00", headers=token)
    assert 400 <= response.status_code < 500, response.text


def test_the_detail_answer_is_plain_json_with_strings_for_decimals(api, token, opened_unit):
    raw = api.get(f"{BASE}/{opened_unit.barcode}", headers=token).text
    parsed = json.loads(raw, parse_float=lambda text: pytest.fail(f"a float in the answer: {text}"))
    assert parsed["certified_values"][0]["value"] == "1000"


def test_times_in_the_answer_are_utc(api, token, opened_unit):
    detail = api.get(f"{BASE}/{opened_unit.barcode}", headers=token).json()
    for key in ("expires_at", "opened_at", "received_at", "at"):
        moment = datetime.fromisoformat(detail[key].replace("Z", "+00:00"))
        assert moment.utcoffset() == timedelta(0) and moment.tzinfo is not None, key
    assert datetime.fromisoformat(detail["at"].replace("Z", "+00:00")) <= datetime.now(UTC)
