"""The public verification page (/verify/{token}), its upload check and the JSON lookup by hash:
no sign-in, a friendly 404 for an unknown token, a tampered file shown as invalid (never an
error page), a non-PDF refused with 422 and a file over 20 MB with 413, plain forms without JS."""

from __future__ import annotations

import re

import pytest

from app.reports.models import ReportState
from tests.conftest import csrf_of
from tests.reports.conftest import make_report
from tests.reports.test_verification import issue_signed, supersede, withdraw


@pytest.fixture
def issued(db, settings, users):
    return issue_signed(db, settings, users["analyst"])


def upload(client, token: str, data: bytes, *, name: str = "report.pdf", csrf: str | None = None,
           headers: dict | None = None):
    return client.post(f"/verify/{token}", files={"file": (name, data, "application/pdf")},
                       data={"csrf_token": csrf if csrf is not None else csrf_of(client)}, headers=headers or {})


def attr(html: str, name: str) -> list[str]:
    return re.findall(rf'{name}="([^"]+)"', html)


def test_the_page_shows_the_record_without_sign_in(client, issued):
    page = client.get(f"/verify/{issued.report.verify_token}")
    assert page.status_code == 200
    html = page.text
    assert issued.report.report_no in html and issued.report.pdf_sha256 in html
    assert issued.report.issued_at.strftime("%Y") in html
    assert attr(html, "data-status") == ["valid"]
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html
    assert 'type="file" name="file"' in html
    assert 'name="viewport" content="width=device-width' in html  # laid out for a phone


def test_the_lab_name_is_on_the_page(client, db, issued):
    from app.people.service import save_lab

    with db.transaction() as session:
        save_lab(session, None, check_permission=False, name_zh="市生态环境监测中心", name_en="City Monitoring Centre",
                 cma_certificate_no="201912345678")
    html = client.get(f"/verify/{issued.report.verify_token}").text
    assert "市生态环境监测中心" in html and "CMA 201912345678" in html


@pytest.mark.parametrize("token", ["no-such-token", "x" * 41, "%20", "a" * 200])
def test_an_unknown_token_is_a_friendly_404(client, token):
    page = client.get(f"/verify/{token}")
    assert page.status_code == 404
    assert attr(page.text, "data-code") == ["verify_token_unknown"]
    assert 'class="verify"' in page.text and "internal_error" not in page.text  # the site's own page


def test_a_draft_report_is_not_published_by_its_token(client, db, users):
    draft = make_report(db, users["analyst"], [], state=ReportState.REVIEWED.value)
    assert client.get(f"/verify/{draft.verify_token}").status_code == 404
    assert upload(client, draft.verify_token, b"%PDF-1.7").status_code == 404


def test_a_superseded_report_links_to_its_successor(client, db, settings, users):
    old = issue_signed(db, settings, users["analyst"], report_no="BG2026-0200")
    new = issue_signed(db, settings, users["analyst"], report_no="BG2026-0200-A1")
    supersede(db, old.report, new.report)
    html = client.get(f"/verify/{old.report.verify_token}").text
    assert attr(html, "data-status") == ["superseded"]
    assert f'href="/verify/{new.report.verify_token}"' in html and "BG2026-0200-A1" in html
    answer = upload(client, old.report.verify_token, old.pdf)
    assert attr(answer.text, "data-outcome") == ["match"] and "BG2026-0200-A1" in answer.text


def test_a_withdrawn_report_shows_when_and_why(client, db, issued, users):
    withdraw(db, issued.report, users["quality_manager"], "检测方法引用错误")
    html = client.get(f"/verify/{issued.report.verify_token}").text
    assert attr(html, "data-status") == ["withdrawn"]
    assert "检测方法引用错误" in html and "2026-12-04" in html


def test_uploading_the_issued_file_says_it_matches(client, issued):
    answer = upload(client, issued.report.verify_token, issued.pdf)
    assert answer.status_code == 200
    assert attr(answer.text, "data-outcome") == ["match"]
    assert "<html" in answer.text  # a plain form post (no JS) gets the whole page back


def test_htmx_gets_the_result_fragment_only(client, issued):
    answer = upload(client, issued.report.verify_token, issued.pdf, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "<html" not in answer.text
    assert answer.text.strip().startswith('<section id="verify-result"')
    assert attr(answer.text, "data-outcome") == ["match"]


def test_a_tampered_file_is_shown_invalid_not_an_error_page(client, issued):
    tampered = bytearray(issued.pdf)
    tampered[issued.pdf.index(b"stream\n") + 30] ^= 0x20
    answer = upload(client, issued.report.verify_token, bytes(tampered))
    assert answer.status_code == 200
    assert attr(answer.text, "data-outcome") == ["invalid"]
    assert "文件在签名后被修改过。" in answer.text


def test_another_reports_file_is_named(client, db, settings, users, issued):
    other = issue_signed(db, settings, users["analyst"])
    answer = upload(client, issued.report.verify_token, other.pdf)
    assert attr(answer.text, "data-outcome") == ["other-report"]
    assert other.report.report_no in answer.text and f"/verify/{other.report.verify_token}" in answer.text


def test_english_reasons_for_an_english_reader(client, issued):
    client.get("/lang/en?next=/")
    answer = upload(client, issued.report.verify_token, b"%PDF-1.7\n" + b"x" * 100)
    assert attr(answer.text, "data-outcome") == ["invalid"]
    assert "The file is not a readable PDF." in answer.text


@pytest.mark.parametrize(("data", "name"), [(b"PK\x03\x04 zip", "report.pdf"), (b"\x89PNG\r\n\x1a\n", "scan.png")])
def test_a_file_that_is_not_a_pdf_is_refused_with_422(client, issued, data, name):
    answer = upload(client, issued.report.verify_token, data, name=name)
    assert answer.status_code == 422
    assert attr(answer.text, "data-code") == ["not_a_pdf"]
    assert "不是 PDF" in answer.text


def test_no_file_is_refused_with_422(client, issued):
    answer = client.post(f"/verify/{issued.report.verify_token}", data={"csrf_token": csrf_of(client)})
    assert answer.status_code == 422 and attr(answer.text, "data-code") == ["empty_file"]
    assert upload(client, issued.report.verify_token, b"").status_code == 422


def test_a_file_over_20_mb_is_refused_with_413(client, issued):
    answer = upload(client, issued.report.verify_token, b"%PDF-1.7\n" + b"0" * (20 * 1024 * 1024))
    assert answer.status_code == 413
    assert attr(answer.text, "data-code") == ["verify_upload_too_large"]
    assert "20 MB" in answer.text
    exactly = upload(client, issued.report.verify_token, b"%PDF-1.7\n" + b"0" * (20 * 1024 * 1024 - 9))
    assert exactly.status_code == 200 and attr(exactly.text, "data-outcome") == ["invalid"]


def test_an_upload_without_the_csrf_token_is_refused(client, issued):
    answer = upload(client, issued.report.verify_token, issued.pdf, csrf="forged")
    assert answer.status_code == 403


def test_the_page_reads_in_a_fixed_number_of_queries(client, db, settings, users, count_queries):
    old = issue_signed(db, settings, users["analyst"])
    new = issue_signed(db, settings, users["analyst"])
    supersede(db, old.report, new.report)
    for report in (new.report, old.report):
        with count_queries() as counted:
            assert client.get(f"/verify/{report.verify_token}").status_code == 200
        assert counted.count <= 4, counted.statements


# ---------------------------------------------------------------- JSON


def test_the_api_answers_by_hash_without_sign_in(client, db, settings, users):
    old = issue_signed(db, settings, users["analyst"], report_no="BG2026-0300")
    new = issue_signed(db, settings, users["analyst"], report_no="BG2026-0300-A1")
    supersede(db, old.report, new.report)
    body = client.get(f"/api/v1/verify/{old.report.pdf_sha256.upper()}").json()
    assert body["status"] == "superseded" and body["report_no"] == "BG2026-0300"
    assert body["superseded_by"] == "BG2026-0300-A1" and body["sha256"] == old.report.pdf_sha256
    assert body["issued_at"].startswith(old.report.issued_at.strftime("%Y-%m-%d"))
    assert body["verify_url"] == f"http://127.0.0.1:8000/verify/{old.report.verify_token}"
    current = client.get(f"/api/v1/verify/{new.report.pdf_sha256}").json()
    assert current["status"] == "valid" and current["superseded_by"] is None


def test_the_api_says_withdrawn(client, db, issued, users):
    withdraw(db, issued.report, users["quality_manager"], "客户信息错误")
    body = client.get(f"/api/v1/verify/{issued.report.pdf_sha256}").json()
    assert body["status"] == "withdrawn" and body["withdrawal_reason"] == "客户信息错误"
    assert body["withdrawn_at"].startswith("2026-12-03T17:30")


def test_an_unknown_hash_is_a_404_problem(client, issued):
    answer = client.get("/api/v1/verify/" + "0" * 64)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "verified_report_not_found"


def test_a_draft_reports_hash_is_not_published(client, db, settings, users):
    approved = issue_signed(db, settings, users["analyst"], state=ReportState.APPROVED.value)
    assert client.get(f"/api/v1/verify/{approved.report.pdf_sha256}").status_code == 404


@pytest.mark.parametrize("bad", ["0" * 63, "0" * 65, "g" * 64, "abc"])
def test_a_malformed_hash_is_a_422(client, bad):
    answer = client.get(f"/api/v1/verify/{bad}")
    assert answer.status_code == 422 and answer.json()["code"] == "validation_error"


def test_a_misconfigured_lab_certificate_is_a_503_not_a_verdict(client, app, issued, tmp_path):
    app.state.settings.report_pkcs12_file = tmp_path / "missing.p12"
    answer = upload(client, issued.report.verify_token, issued.pdf)
    assert answer.status_code == 503
    assert attr(answer.text, "data-code") == ["signing_certificate_unavailable"]
    assert "data-outcome" not in answer.text
