"""Browser tests: Debian's Chromium driven by Playwright against spark-control served
by uvicorn on a free port, in front of the simulated Spark 2.

One browser for the whole session; each test gets a fresh app (its own settings,
pollers and jobs) and a fresh browser context (no storage carried over).
Screenshots go to tests/browser/artifacts/ (ignored by git).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from app.config import Settings
from app.server import STATIC_DIR, create_app
from sim.spark2 import free_ports

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup test)")
    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail(f"no dashboard at {STATIC_DIR}/index.html")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class Served:
    """spark-control (lifespan, pollers and all) on a real port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                log_level="warning", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(300):
            if self.server.started or not self.thread.is_alive():
                break
            self.thread.join(0.05)
        assert self.server.started, "spark-control did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "spark-control did not stop"


@dataclass
class Dashboard:
    """One app plus one page on it; `errors` collects uncaught page exceptions."""

    app: Served
    page: object
    errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def token(self) -> str | None:
        """The app's access token; None when it runs without auth."""
        auth = getattr(self.app.app.state, "auth", None)
        return getattr(auth, "token", None)

    def open(self) -> None:
        """Sign in the way a person does (the login link sets the session cookie and
        redirects to the dashboard), or just open it when auth is off."""
        if self.token:
            self.page.goto(f"{self.url}/login?token={self.token}")
            assert self.page.url == self.url + "/", self.page.url
        else:
            self.page.goto(self.url + "/")

    def api(self, path: str):
        return self.page.request.get(self.url + path)

    def shot(self, artifacts: Path, name: str, *, widths: tuple[str, ...] = ("desktop", "phone"),
             dark: bool = False) -> list[Path]:
        """Full-page screenshots at the given widths; returns the files written."""
        written = []
        if dark:
            self.page.emulate_media(color_scheme="dark")
        for width in widths:
            self.page.set_viewport_size(DESKTOP if width == "desktop" else PHONE)
            self.page.wait_for_timeout(150)  # let the layout settle
            path = artifacts / f"{name}-{width}{'-dark' if dark else ''}.png"
            self.page.screenshot(path=str(path), full_page=True)
            written.append(path)
        self.page.set_viewport_size(DESKTOP)
        if dark:
            self.page.emulate_media(color_scheme="light")
        print("screenshots:", *written)
        return written

    def screens(self, artifacts: Path, name: str) -> None:
        """Screenshots at both widths and in dark mode, and the page fitting a phone."""
        written = self.shot(artifacts, name)
        self.shot(artifacts, name, widths=("desktop",), dark=True)
        assert all(p.stat().st_size > 10_000 for p in written)
        self.page.set_viewport_size(PHONE)
        overflow = self.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= PHONE["width"], f"the page is {overflow} px wide at phone width"
        self.page.set_viewport_size(DESKTOP)


@pytest.fixture
def dashboard(browser) -> Iterator[Callable[[Settings], Dashboard]]:
    """dashboard(settings) → a served app and a fresh page (desktop width) on it."""
    stack: list[tuple[object, Served, Dashboard]] = []

    def make(settings: Settings) -> Dashboard:
        served = Served(settings).__enter__()
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        board = Dashboard(served, page)
        page.on("pageerror", lambda exc: board.errors.append(str(exc)))
        # the dashboard must pass its own Content-Security-Policy (app/headers.py)
        page.on("console", lambda msg: "Content Security Policy" in msg.text
                and board.errors.append(msg.text))
        stack.append((context, served, board))
        return board

    yield make
    for context, served, board in reversed(stack):
        context.close()  # closes open event streams before the server stops
        served.__exit__(None, None, None)
        assert not board.errors, f"uncaught errors in the page: {board.errors}"


@pytest.fixture(scope="session")
def conversation(tmp_path_factory):
    """45 s, 3 espeak-ng voices (seeded) that the CPU engine's default encoder (CAM++,
    a model of real voices) tells apart: en-us+m3, en+f3 and en-gb+f4 (two male espeak
    variants are one person to it)."""
    from testaudio.generate import DISTINCT_VOICES, make_conversation

    return make_conversation(tmp_path_factory.mktemp("conversation"), speakers=3,
                             seconds=45, seed=11, voices=list(DISTINCT_VOICES))
