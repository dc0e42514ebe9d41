"""Instrument records in a real browser: the technical manager registers an instrument he is
responsible for, enters a verification certificate with its PDF, confirms it (计量确认, signed
with his password) and records a failed intermediate check; the quality manager then finds the
impact assessment in the list and signs its disposition. Every page at desk and phone width."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import DEMO_PASSWORD, DESKTOP, PHONE, sign_in, sign_out
from tests.e2e.layout import layout_problems

pytestmark = pytest.mark.e2e

ASSET_NO = "JC-E2E-REC-01"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class Walk:
    """Screenshots at both widths and the layout checks of every page visited."""

    def __init__(self, page, log, screenshots) -> None:
        self.page, self.log, self.screenshots = page, log, screenshots
        self.problems: list[str] = []

    def look(self, name: str) -> None:
        for viewport in (DESKTOP, PHONE):
            self.page.set_viewport_size(viewport)
            width = viewport["width"]
            found = layout_problems(self.page)
            if width != PHONE["width"]:
                found = [p for p in found if "horizontal overflow" not in p]
            self.problems += [f"{name} {width}px: {p}" for p in found]
            self.screenshots(self.page, f"instruments-{name}-{width}")
        self.page.set_viewport_size(DESKTOP)
        self.problems += [f"{name}: {e}" for e in self.log.take()]

    def submit(self, selector: str) -> None:
        with self.page.expect_navigation():
            self.page.click(selector)


def test_certificate_confirmation_failed_check_and_disposition(new_page, screenshots):
    page, log = new_page(DESKTOP)
    walk = Walk(page, log, screenshots)
    today = date.today()

    # ---- the technical manager registers the instrument, responsible for it himself
    sign_in(page, "technical")
    page.goto("/instruments/new")
    page.fill("input[name=asset_no]", ASSET_NO)
    page.fill("input[name=name_zh]", "紫外可见分光光度计（e2e）")
    page.fill("input[name=name_en]", "UV-Vis spectrophotometer (e2e)")
    page.fill("input[name=model]", "UV-2600i")
    page.fill("input[name=commissioned_on]", (today - timedelta(days=400)).isoformat())
    technical = page.locator("select[name=responsible_id] option", has_text="(technical)").get_attribute("value")
    page.select_option("select[name=responsible_id]", technical)
    page.fill("textarea[name=uses]", "NH3-N | HJ 535-2009\nTP | GB 11893-89")
    walk.submit("#registry-form button[type=submit]")
    assert page.url.endswith(f"/instruments/{ASSET_NO}"), page.url

    # ---- a verification certificate with its PDF
    walk.submit(f"a[href='/instruments/{ASSET_NO}/calibrations/new']")
    assert page.locator("input[name=allowed_parameters][value='NH3-N']").count() == 1
    walk.look("calibration-new")
    page.check("input[name=kind][value=verification]")
    page.fill("input[name=provider]", "江城市计量测试研究院")
    page.fill("input[name=provider_accreditation_no]", "CNAS L1234")
    page.fill("input[name=certificate_no]", "JD2025-E2E-0042")
    page.fill("input[name=performed_on]", (today - timedelta(days=3)).isoformat())
    page.fill("input[name=valid_until]", (today + timedelta(days=362)).isoformat())
    page.check("input[name=result][value=pass]")
    page.fill("textarea[name=corrections]", "波长示值误差 +0.3 nm（656.1 nm）")
    page.set_input_files("input[name=certificate]",
                         files=[{"name": "JD2025-E2E-0042.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    walk.submit("form.record-form button[type=submit]")
    assert "/instruments/calibrations/" in page.url, page.url
    calibration_url = page.url
    assert page.locator("form[action$='/acceptance']").count() == 1
    walk.look("calibration-record")

    # ---- 计量确认 from the worklist, signed with the password
    page.goto("/instruments/confirmations")
    walk.look("confirmations")
    walk.submit(f"a[href='{urlparse(calibration_url).path}#acceptance']")
    page.fill("#acceptance input[name=password]", DEMO_PASSWORD)
    walk.submit("#acceptance button[value=accept]")
    assert page.url == calibration_url
    assert page.locator("#acceptance .signature.intact").count() == 1
    walk.look("calibration-accepted")

    # ---- a failed intermediate check
    page.goto(f"/instruments/{ASSET_NO}/checks/new")
    walk.look("check-new")
    yesterday = (today - timedelta(days=1)).isoformat()
    page.fill("input[name=performed_at]", f"{yesterday}T09:30")
    page.fill("input[name=check_standard]", "GBW(E)080218 氨氮标准溶液")
    page.fill("input[name=method]", "HJ 535-2009")
    page.fill("input[name=criterion]", "0.500 ± 0.010 mg/L")
    page.fill("input[name=measured_value]", "about 0.53")  # not a number: refused, the form comes back
    page.fill("input[name=unit]", "mg/L")
    page.check("input[name=result][value=fail]")
    page.fill("input[name=password]", DEMO_PASSWORD)
    walk.submit("form.record-form button[type=submit]")
    assert page.locator(".alert.error[data-code=invalid_measured_value]").count() == 1
    assert page.input_value("input[name=check_standard]") == "GBW(E)080218 氨氮标准溶液"
    walk.log.take()  # the refusal answers 422: the browser logs that, rightly
    walk.look("check-refused")
    page.fill("input[name=measured_value]", "0.531")
    page.fill("input[name=password]", DEMO_PASSWORD)
    walk.submit("form.record-form button[type=submit]")
    assert "/instruments/checks/" in page.url, page.url
    assert page.locator("[data-status=out_of_service]").count() >= 1
    assert page.locator(".signature.intact").count() == 1
    impact_link = page.locator(".alert a[href^='/instruments/impact/']")
    assessment_url = impact_link.get_attribute("href")
    walk.look("check-failed")
    sign_out(page)

    # ---- the quality manager disposes of the impact assessment
    sign_in(page, "quality")
    page.goto("/instruments/impact")
    assert page.locator(f"a[href='{assessment_url}']").count() == 1
    walk.look("impact-list")
    walk.submit(f"a[href='{assessment_url}']")
    assert page.locator("form[action$='/disposition']").count() == 1
    walk.look("impact-open")
    page.check("input[name=disposition][value=retest]")
    page.fill("textarea[name=justification]", "核查失败前一日内测定的样品仍在保存期内，全部重新分析。")
    page.fill("#disposition input[name=password]", DEMO_PASSWORD)
    walk.submit("#disposition button[type=submit]")
    assert page.url.endswith(assessment_url)
    assert page.locator("#disposition .signature.intact").count() == 1
    walk.look("impact-decided")

    # the certificate opens as the stored PDF
    response = page.request.get(f"{calibration_url}/certificate")
    assert response.status == 200 and response.body() == PDF
    assert not walk.problems, "\n".join(walk.problems)
