"""The import service: a MassHunter export into a running ICP-MS batch (matched by label and by
sample number, case and blanks ignored; ppb read as μg/L; aliases choose a channel), rows that match
nothing listed with their reason, the raw bytes kept by SHA-256, the same file refused the second
time naming the earlier import, and every refusal (too large, unreadable cells, unknown layout,
nothing matched, a reading the results service refuses, a closed batch, an inspector) leaving
nothing behind. Generic profiles: created, changed with audit, built-ins read-only."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.analysis import import_profiles, imports
from app.analysis.models import AnalysisResult, ImportProfile, ResultImport
from app.core.audit import AuditEvent
from app.core.errors import DomainError
from app.core.files import StoredFile
from tests.analysis.import_fixtures import *  # noqa: F403
from tests.analysis.import_fixtures import DATA, METALS, batch_state, counts, icpms_batch, masshunter_now
from tests.analysis.result_fixtures import set_state

MB = 1024 * 1024


def do_import(db, actor, batch, content, store, profile="AGILENT-ICPMS", filename="batch.csv", **kwargs):
    with db.transaction() as session:
        done = imports.import_file(session, actor, batch, profile, filename, content, store, **kwargs)
        session.flush()
        session.expunge(done)
        return done


def refused(db, act, code):
    before = counts(db)
    with pytest.raises(DomainError) as error:
        act()
    assert error.value.code == code, error.value.message("en")
    assert counts(db) == before
    return error.value


def results_of(db, batch):
    with db.reading() as session:
        rows = list(session.scalars(select(AnalysisResult).where(AnalysisResult.batch_id == batch.id)
                                    .order_by(AnalysisResult.position_id, AnalysisResult.parameter)))
        for row in rows:
            session.expunge(row)
        return rows


def test_a_masshunter_export_is_imported_with_its_unmatched_rows_listed(db, users, icpms, store):
    analyst = users["analyst"]
    content = masshunter_now(db)
    done = do_import(db, analyst, icpms.batch, content, store, filename="C:\\MassHunter\\batch 0304.csv")
    assert done.code.startswith("IM") and done.filename == "batch 0304.csv"
    assert (done.rows_total, done.rows_imported) == (18, 8)
    assert done.sha256 == hashlib.sha256(content).hexdigest()
    assert store.read(done.sha256) == content  # the raw bytes, as uploaded
    found = {(r.position_id, r.parameter): r for r in results_of(db, icpms.batch)}
    by_label = icpms.positions
    assert set(found) == {(by_label[label].id, p) for label in ("BLK1", "S-001") for p in METALS} | {
        (by_label["S-002"].id, "As"), (by_label["S-002"].id, "Pb")}
    lead = found[(by_label["S-001"].id, "Pb")]
    assert (lead.reading, lead.value, lead.unit, lead.source, lead.import_id) == (
        D("2.637"), D("2.637"), "μg/L", "import", done.id)
    # MassHunter's Conc. already includes the Dil. column: it is not applied a second time
    assert found[(by_label["S-002"].id, "As")].value == D("2.842")
    assert found[(by_label["S-002"].id, "As")].dilution_factor == D("1")
    unmatched = imports.unmatched_of(done)
    assert [(u["row"], u["reason"]) for u in unmatched if u["reason"] != "position_not_found"] == [(7, "no_reading")]
    assert sorted({u["cells"]["sample"] for u in unmatched if u["reason"] == "position_not_found"}) == [
        "Cal Blank", "Std 1 ppb", "WS99-999999-999"]
    assert len(unmatched) == 10 and unmatched[-1]["cells"]["value"] == "1.993"
    assert batch_state(db, icpms.batch) == "imported"
    with db.reading() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "results.imported")).one()
        assert event.after_data["encoding"] == "utf-8" and event.after_data["rows_imported"] == 8
        stored = session.scalars(select(StoredFile).where(StoredFile.sha256 == done.sha256)).one()
        assert stored.media_type == "text/csv" and stored.size == len(content)
        view = imports.import_view(session, session.get(ResultImport, done.id))
        assert view.encoding == "utf-8" and view.batch.batch_no == icpms.batch.batch_no


def test_the_same_file_twice_is_recognised_in_any_batch(db, users, icpms, store):
    analyst = users["analyst"]
    content = masshunter_now(db)
    first = do_import(db, analyst, icpms.batch, content, store)
    again = refused(db, lambda: do_import(db, analyst, icpms.batch, content, store), "import_already_done")
    assert first.code in again.message("en") and icpms.batch.batch_no in again.message("zh")
    other = icpms_batch(db, users, store, prefix="WS02-261203", like=icpms)
    refused(db, lambda: do_import(db, analyst, other.batch, content, store), "import_already_done")


def test_an_element_channel_is_chosen_by_the_aliases(db, users, icpms, store):
    text = (DATA / "masshunter_batch.csv").read_text().replace("111  Cd  [ He ]", "206  Pb  [ He ]")
    done = do_import(db, users["analyst"], icpms.batch, masshunter_now(db, text), store)
    pb = [r for r in results_of(db, icpms.batch) if r.parameter == "Pb"]
    assert {r.reading for r in pb if r.position_id == icpms.positions["S-001"].id} == {D("2.637")}  # 208, not 206
    assert {u["cells"]["parameter"] for u in imports.unmatched_of(done)
            if u["reason"] == "parameter_not_in_batch"} == {"Pb 206"}


def test_a_file_over_the_limit_is_refused_413(db, users, icpms, store):
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, b"x" * (50 * MB + 1), store),
                    "import_too_large")
    assert error.http_status == 413 and "50 MB" in error.message("en")
    refused(db, lambda: do_import(db, users["analyst"], icpms.batch, masshunter_now(db), store, max_bytes=100),
            "import_too_large")


def test_unreadable_cells_refuse_the_whole_file_naming_row_and_column(db, users, icpms, store):
    content = masshunter_now(db).replace(b",2.637,", b',"2,637",')
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, content, store), "import_cell_problems")
    assert "row 6, column Q (Pb 208 Conc. [ ppb ])" in error.message("en")
    assert "第 6 行 Q (Pb 208 Conc. [ ppb ]) 列" in error.message("zh") and "逗号" in error.message("zh")
    text = masshunter_now(db).replace(b",2.637,", b",=cmd|' /C calc'!A0,")
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, text, store), "import_cell_problems")
    assert "=cmd" in error.message("en")


def test_a_file_in_another_layout_is_refused(db, users, icpms, store):
    content = (DATA / "chromeleon_anions_gbk.csv").read_bytes()
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, content, store),
                    "import_unknown_layout")
    assert "AGILENT-ICPMS" in error.message("en")


def test_nothing_matched_is_refused(db, users, icpms, store):
    text = re.sub("ws01-261203", "WS77-000000", masshunter_now(db).decode(), flags=re.I).replace("BLK1", "BLANK-X")
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, text.encode(), store),
                    "import_nothing_matched")
    assert "18" in error.message("en")


def test_one_refused_reading_refuses_the_import_naming_the_file_row(db, users, icpms, store):
    text = masshunter_now(db).decode()
    text = text.replace("Conc. [ ppb ],Conc. RSD,CPS,CPS RSD,Conc. [ ppb ],Conc. RSD,CPS,CPS RSD\n",
                        "Conc. [ ppb ],Conc. RSD,CPS,CPS RSD,Conc. [ mg/kg ],Conc. RSD,CPS,CPS RSD\n")
    assert "mg/kg" in text
    error = refused(db, lambda: do_import(db, users["analyst"], icpms.batch, text.encode(), store),
                    "import_cell_problems")
    assert "row 5, column Q (Pb 208 Conc. [ mg/kg ])" in error.message("en") and "mg/kg" in error.message("en")
    assert results_of(db, icpms.batch) == [] and batch_state(db, icpms.batch) == "running"


def test_a_batch_not_started_or_already_submitted_takes_no_import(db, users, store):
    waiting = icpms_batch(db, users, store, state="open")
    refused(db, lambda: do_import(db, users["analyst"], waiting.batch, masshunter_now(db), store),
            "batch_not_running")
    submitted = icpms_batch(db, users, store, prefix="WS03-261203", like=waiting)
    set_state(db, submitted, "submitted")
    refused(db, lambda: do_import(db, users["analyst"], submitted.batch, masshunter_now(db), store),
            "import_batch_closed")


def test_an_inspector_cannot_import(db, users, icpms, store):
    refused(db, lambda: do_import(db, users["inspector"], icpms.batch, masshunter_now(db), store),
            "inspector_read_only")


def test_a_generic_profile_imports_an_xlsx_with_aliases_and_dilution(db, users, icpms, store):
    from tests.analysis.test_import_parsers import xlsx

    technical = users["technical_manager"]
    mapping = {"format": "xlsx", "header_row": 2, "sample_column": "样品编号", "wide_columns": {"铅": "铅", "镉": "Cd"},
               "unit": "ppb", "dilution_column": "稀释倍数", "measured_at_column": "测定时间"}
    with db.transaction() as session:
        import_profiles.create_profile(session, technical, "icp-xlsx", "ICP-MS 结果表（Excel）", mapping)
    when = masshunter_now(db, "2026/03/04 09:30").decode()
    content = xlsx([["ICP-MS 结果"], ["样品编号", "测定时间", "稀释倍数", "铅", "镉"],
                    ["S-001", when, 1, "2.637", None], ["WS01-261203-002", when, 5, 1.2, 0.02]])
    done = do_import(db, users["analyst"], icpms.batch, content, store, profile="ICP-XLSX", filename="r.xlsx")
    assert (done.rows_total, done.rows_imported) == (3, 3)
    found = {(r.position_id, r.parameter): r for r in results_of(db, icpms.batch)}
    diluted = found[(icpms.positions["S-002"].id, "Pb")]
    assert (diluted.reading, diluted.dilution_factor, diluted.value) == (D("1.2"), D("5"), D("6.0"))
    with db.reading() as session:
        assert session.scalars(select(StoredFile.media_type).where(StoredFile.sha256 == done.sha256)).one() == \
            imports.XLSX_MEDIA_TYPE


# ---------------------------------------------------------------- profiles


def test_builtin_profiles_are_made_once(db, users):
    with db.transaction() as session:
        first = [p.code for p in import_profiles.ensure_builtin_profiles(session, users["analyst"])]
    with db.transaction() as session:
        again = [p.code for p in import_profiles.ensure_builtin_profiles(session, users["analyst"])]
        assert first == again == ["AGILENT-ICPMS", "THERMO-IC"]
        assert len(session.scalars(select(ImportProfile)).all()) == 2


def test_generic_profiles_are_created_and_changed_with_audit(db, users):
    technical = users["technical_manager"]
    mapping = {"sample_column": "Sample", "parameter_column": "Analyte", "value_column": "Result", "unit": "mg/L"}
    with db.transaction() as session:
        profile = import_profiles.create_profile(session, technical, "lab-uv", "UV 结果", mapping)
        assert profile.code == "LAB-UV" and json.loads(profile.mapping)["unit"] == "mg/L"
    with db.transaction() as session:
        profile = import_profiles.profile_by_code(session, "LAB-UV")
        import_profiles.update_profile(session, technical, profile, "UV 结果 v2", {**mapping, "unit": "μg/L"})
    with db.reading() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "import_profile")
                                 .order_by(AuditEvent.seq)).all()
        assert [e.action for e in events] == ["import_profile.created", "import_profile.updated"]
        assert events[1].before_data["mapping"]["unit"] == "mg/L" and events[1].after_data["mapping"]["unit"] == "μg/L"


@pytest.mark.parametrize(("who", "code", "name", "mapping", "error"), [
    ("analyst", "X-1", "x", {"sample_column": "S", "parameter_column": "P", "value_column": "V"},
     "permission_denied"),
    ("inspector", "X-1", "x", {"sample_column": "S", "parameter_column": "P", "value_column": "V"},
     "inspector_read_only"),
    ("technical_manager", "AGILENT-ICPMS", "x", {"sample_column": "S", "parameter_column": "P", "value_column": "V"},
     "import_profile_duplicate"),
    ("technical_manager", "X 1!", "x", {"sample_column": "S", "parameter_column": "P", "value_column": "V"},
     "import_mapping_invalid"),
    ("technical_manager", "X-1", "", {"sample_column": "S", "parameter_column": "P", "value_column": "V"},
     "import_mapping_invalid"),
    ("technical_manager", "X-1", "x", {"sample_column": "S"}, "import_mapping_invalid"),
])
def test_profile_refusals_change_nothing(db, users, who, code, name, mapping, error):
    def act():
        with db.transaction() as session:
            import_profiles.create_profile(session, users[who], code, name, mapping)

    refused(db, act, error)


def test_a_builtin_profile_cannot_be_edited(db, users):
    with db.transaction() as session:
        import_profiles.ensure_builtin_profiles(session, users["technical_manager"])

    def act():
        with db.transaction() as session:
            profile = import_profiles.profile_by_code(session, "THERMO-IC")
            import_profiles.update_profile(session, users["technical_manager"], profile, "x",
                                           {"sample_column": "S", "parameter_column": "P", "value_column": "V"})

    refused(db, act, "import_profile_builtin")
