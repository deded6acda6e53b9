"""The API reference (/docs) renders in Chromium with every asset from spark-control
itself: no CDN request, no CSP violation (the fixture fails on those)."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.config import Settings


def test_docs_render_with_no_outside_request(dashboard, tmp_path):
    path, ready = "/docs", ".opblock"
    board = dashboard(Settings(_env_file=None, data_dir=tmp_path / "data", local_speech=False))
    board.open()
    page = board.page
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlsplit(request.url).netloc))
    page.goto(f"{board.url}{path}")
    page.wait_for_selector(ready, timeout=20_000)
    assert page.locator(ready).count() >= 10  # the operations of the API, listed
    own = urlsplit(board.url).netloc
    assert set(hosts) <= {own, ""}, hosts  # "" for data: and blob: URLs


def test_swagger_can_send_an_upload_form(dashboard, tmp_path):
    """The upload endpoints read their own form; /docs must still offer the file field."""
    board = dashboard(Settings(_env_file=None, data_dir=tmp_path / "data", local_speech=False))
    board.open()
    operation = "transcribe_speakers_api_audio_transcribe_with_speakers_post"
    board.page.goto(f"{board.url}/docs#/audio/{operation}")
    board.page.locator(".opblock.is-open .try-out__btn").click()
    assert board.page.locator('.opblock.is-open input[type="file"]').count() == 1
