"""One small demo store per session, the dashboard served over it on a free localhost port, and
headless Chromium (Debian's ``chromium``) driven by Playwright's sync API.

Without the ``playwright`` package or a Chromium binary the browser tests are skipped with the
reason, unless ``SEQEMB_REQUIRE_BROWSER`` is set (CI sets it): then they fail, so CI never
skips them silently. ``SEQEMB_CHROMIUM`` points at another Chromium binary.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from embeddings.store import Store
from ui.demo import DemoResult, run_demo

SCALE = 0.25  # 500 cards, 25,000 transactions: about 30 s of demo on one thread
CHROMIUM = os.environ.get("SEQEMB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SEQEMB_CHROMIUM)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, DemoResult]:
    """``seqemb demo`` at :data:`SCALE` into a SQLite store of its own (models under its home)."""
    home = tmp_path_factory.mktemp("dashboard-home")
    before = os.environ.get("SEQEMB_HOME")
    os.environ["SEQEMB_HOME"] = str(home)
    try:
        store = Store(f"sqlite:///{home / 'seqemb.sqlite'}")
        result = run_demo(store, seed=0, scale=SCALE, progress=False, say=lambda _: None)
    finally:
        if before is None:
            os.environ.pop("SEQEMB_HOME", None)
        else:
            os.environ["SEQEMB_HOME"] = before
    return store, result


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium; skipped (or failed, with SEQEMB_REQUIRE_BROWSER) when unavailable."""
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("SEQEMB_REQUIRE_BROWSER"):
            pytest.fail(f"SEQEMB_REQUIRE_BROWSER is set but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboard(browser, demo) -> Iterator[str]:
    """The dashboard over the demo store, served in a background thread; yields its URL."""
    from ui.dashboard.app import serve

    app, url = serve(demo[0], port=free_port(), block=False, quiet=True)
    yield url
    app.close()


@pytest.fixture
def empty_dashboard(browser, tmp_path: Path) -> Iterator[str]:
    """The dashboard over a store no job has written to yet; yields its URL."""
    from ui.dashboard.app import serve

    app, url = serve(Store(f"sqlite:///{tmp_path / 'empty.sqlite'}"), port=free_port(), block=False, quiet=True)
    yield url
    app.close()


@pytest.fixture
def page(browser, dashboard: str):
    """A fresh page on the dashboard, loaded; ``page.problems`` collects page errors and error toasts."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    tab.problems = problems
    tab.goto(dashboard)
    tab.wait_for_selector("#overview-runs table")
    yield tab
    context.close()
