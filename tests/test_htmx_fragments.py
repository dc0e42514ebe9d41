"""Every list page also answers an htmx request (its results block rendered alone)."""

from __future__ import annotations

import pytest

from tests.conftest import login

LIST_PAGES = ["/people/users?q=a", "/instruments?q=a", "/instruments/impact?status=open",
              "/instruments/confirmations", "/oversight/audit", "/reference-materials?q=a",
              "/reference-materials/units?q=a", "/reference-materials/reagents", "/reference-materials/solutions",
              "/sites?q=a", "/sites/requests", "/plans?q=a", "/tasks?date_from=",
              "/samples?q=WS01", "/custody/shipments?q=SH", "/custody/gaps", "/receipts?q=RC", "/holding",
              "/storage?room=a", "/storage/disposals?state=requested", "/prep?q=HJ",
              "/methods?q=HJ", "/qualifications", "/curves", "/charts", "/batches?state=open", "/limits",
              "/import-profiles", "/reports?state=draft", "/review", "/scopes/cma", "/scopes/signatories"]


@pytest.mark.parametrize("path", LIST_PAGES)
def test_list_page_renders_as_an_htmx_fragment(client, users, path):
    login(client, "technical-manager")  # reads users, the audit trail and every instrument list
    plain = client.get(path)
    fragment = client.get(path, headers={"HX-Request": "true"})
    assert plain.status_code == 200, plain.text[:300]
    assert fragment.status_code == 200, fragment.text[:300]
    assert len(fragment.text) <= len(plain.text)
