"""Clickjacking: a page on another port of the same host frames the signed-in dashboard
(as the attack did); Chromium must refuse to render it (frame-ancestors 'none')."""

from __future__ import annotations

import http.server
import threading

from app.config import Settings
from sim.spark2 import free_ports


def test_another_page_cannot_frame_the_dashboard(dashboard, tmp_path):
    board = dashboard(Settings(_env_file=None, data_dir=tmp_path / "data", local_speech=False))
    board.open()  # signed in: the session cookie is there
    page = board.page
    (tmp_path / "evil.html").write_text(
        f'<iframe id="victim" src="{board.url}/" width="800" height="600"></iframe>')
    port = free_ports(1)[0]
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text))
    try:
        page.goto(f"http://127.0.0.1:{port}/evil.html")
        page.wait_for_timeout(1500)
        victim = next(f for f in page.frames if f != page.main_frame)
        assert victim.locator("[data-host]").count() == 0  # nothing of the dashboard
        assert any("frame-ancestors 'none'" in text for text in refused), refused
    finally:
        evil.shutdown()
    board.errors.clear()  # the refusal is logged in this page: expected here
