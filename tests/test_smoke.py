from tests.conftest import login


def test_login_and_dashboard(client, users):
    login(client, "quality-manager")
    page = client.get("/dashboard")
    assert page.status_code == 200, page.text
    assert "EnviroLIMS" in page.text
