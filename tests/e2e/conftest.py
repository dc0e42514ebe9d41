"""End-to-end fixtures: the real server (`lims demo --no-serve`, then `lims serve`) on a free
port with a throwaway data dir, and Debian's Chromium driven by Playwright.

Playwright's own browser download is never used: the browser is /usr/bin/chromium. Without it
the e2e tests are skipped on a workstation and fail on CI (env CI set), so a CI image that lost
its browser cannot go green by skipping."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("LIMS_E2E_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DEMO_PASSWORD = "envirolims-demo"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is an e2e test, marked or not."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"e2e: {reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(f"e2e: {reason}")


def _lims() -> str:
    for candidate in (BIN / "lims", ROOT / ".venv" / "bin" / "lims"):
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("the `lims` console script is not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real `lims serve` on demo data; stopped (and its log kept) at the end."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMS_")}
    env.update(LIMS_DATA_DIR=str(data_dir), LIMS_LANGUAGE="zh_CN", LIMS_COOKIE_SECURE="false",
               PYTHONUNBUFFERED="1")
    lims = _lims()
    demo = subprocess.run([lims, "demo", "--no-serve"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, f"lims demo --no-serve failed:\n{demo.stdout}\n{demo.stderr}"

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [lims, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"lims serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"lims serve did not answer /api/v1/health:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium; never `playwright install`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Callable[..., Path]:
    """`shot(page, "quality-dashboard-360-zh")` saves a full-page PNG and returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return shot


@dataclass
class ConsoleLog:
    """Console errors, uncaught exceptions and CSP violations of one page (browser tab)."""

    errors: list[str] = field(default_factory=list)

    def take(self) -> list[str]:
        taken, self.errors = self.errors, []
        return taken


# Chromium reports a CSP refusal on the console; the listener below catches any it might not.
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', function (e) {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')
                + ' at ' + (e.sourceFile || '') + ':' + (e.lineNumber || ''));
});
"""


@pytest.fixture(scope="session")
def server_settings(server, tmp_path_factory: pytest.TempPathFactory):
    """The settings of the running e2e server: its data dir is the session's e2e-data folder."""
    from app.config import Settings

    folders = {p.resolve() for p in tmp_path_factory.getbasetemp().glob("e2e-data*") if (p / "lims.db").exists()}
    assert len(folders) == 1, folders
    return Settings(data_dir=folders.pop())


@pytest.fixture(scope="module")
def server_db(server_settings):
    """The database of the running e2e server: to set up through the services what a walk needs,
    and to check what the pages wrote."""
    from app.core.db import Database

    db = Database.from_settings(server_settings)
    yield db
    db.engine.dispose()


def user_named(session, username: str):
    from sqlalchemy import select

    from app.people.models import User

    return session.scalars(select(User).where(User.username == username)).one()


@pytest.fixture
def new_page(browser, server) -> Iterator[Callable[..., tuple[object, ConsoleLog]]]:
    """`page, log = new_page(viewport, javascript=True)`: a fresh context (no cookies) whose console errors land
    in `log`. Contexts are closed at the end of the test."""
    contexts = []

    def make(viewport: dict | None = None, javascript: bool = True):
        context = browser.new_context(base_url=server, viewport=viewport or DESKTOP,
                                      locale="zh-CN", timezone_id="Asia/Shanghai",
                                      java_script_enabled=javascript)
        context.set_default_timeout(15_000)
        context.add_init_script(_CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        log = ConsoleLog()
        page.on("console", lambda m: m.type == "error" and log.errors.append(
            f"console: {m.text} ({m.location.get('url', '')})"))
        page.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))
        return page, log

    yield make
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- helpers for the tests


def sign_in(page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the real form and land on the dashboard."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.url.endswith("/dashboard"), f"{username}: sign-in landed on {page.url}"


def open_menu(page) -> None:
    if page.get_attribute("details.menu", "open") is None:
        page.click("details.menu > summary")
    page.wait_for_selector("details.menu[open] nav", state="visible")


def switch_language(page, language: str) -> None:
    """Use the header menu's language buttons (a real form post); wait for the new page."""
    open_menu(page)
    with page.expect_navigation():
        page.click(f"details.menu .lang-switch button[value='{language}']")


def sign_out(page) -> None:
    open_menu(page)
    with page.expect_navigation():
        page.click("details.menu button.logout")
    assert "/login" in page.url


def html_lang(page) -> str:
    return page.get_attribute("html", "lang") or ""


def zh_catalogue_compiled() -> bool:
    return (ROOT / "app" / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.mo").exists()


def ensure_language(page, language: str) -> None:
    """Switch through the header menu unless the page is already in `language`."""
    wanted = "zh-CN" if language == "zh_CN" else "en"
    if html_lang(page) != wanted:
        switch_language(page, language)
    assert html_lang(page) == wanted
