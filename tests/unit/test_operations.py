"""/metrics and request ids: counted where things happen, labelled by route template."""

from __future__ import annotations

import io
import logging

import httpx
import respx

from app.config import Settings
from app.logs import handler
from fake_speech import DIAR, URL, answer_speech
from helpers import authed, metric
from speech_audio import wav_bytes


def settings(tmp_path):
    return Settings(_env_file=None, parakeet_url=URL, data_dir=tmp_path)


def job(client) -> str:
    response = client.post("/api/audio/jobs", files={"file": ("a.wav", wav_bytes(2.0))})
    job_id = response.json()["id"]
    with client.stream("GET", f"/api/audio/jobs/{job_id}/events") as stream:
        for _ in stream.iter_lines():
            pass
    return job_id


@respx.mock
def test_jobs_requests_and_gpu_gauge_are_counted(tmp_path):
    answer_speech()
    with authed(settings(tmp_path)) as client:
        done = metric(client, "spark_control_audio_jobs_total", outcome="done")
        route = {"method": "GET", "route": "/api/audio/jobs/{job_id}", "status": "200"}
        gets = metric(client, "spark_control_http_requests_total", **route)
        job_id = job(client)
        client.get(f"/api/audio/jobs/{job_id}")
        assert metric(client, "spark_control_audio_jobs_total", outcome="done") == done + 1
        assert metric(client, "spark_control_audio_job_duration_seconds_count",
                      outcome="done") >= 1
        assert metric(client, "spark_control_http_requests_total", **route) == gets + 1
        text = client.get("/metrics").text
        assert job_id not in text  # one series per route, not per job
        assert metric(client, "spark_control_gpu_requests_in_flight") == 0


@respx.mock
def test_upstream_errors_are_counted_by_kind(tmp_path):
    respx.post(f"{URL}/v1/audio/transcriptions").mock(side_effect=httpx.ConnectError("no"))
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    with authed(settings(tmp_path)) as client:
        before = metric(client, "spark_control_remote_errors_total",
                        kind="upstream_unavailable")
        response = client.post("/api/audio/transcribe-with-speakers",
                               files={"file": ("a.wav", wav_bytes(2.0))})
        assert response.status_code == 503
        assert metric(client, "spark_control_remote_errors_total",
                      kind="upstream_unavailable") == before + 1


def test_refusals_are_counted_too(tmp_path):
    with authed(settings(tmp_path)) as client:
        labels = {"method": "GET", "route": "unmatched", "status": "401"}
        before = metric(client, "spark_control_http_requests_total", **labels)
        client.get("/api/services", headers={"Authorization": "Bearer wrong-token-xxxxx"})
        assert metric(client, "spark_control_http_requests_total", **labels) == before + 1


def test_request_ids_are_echoed_and_put_on_log_lines(tmp_path):
    out = io.StringIO()
    log = logging.getLogger()
    extra = handler(out)
    log.addHandler(extra)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        with authed(settings(tmp_path)) as client:
            given = client.get("/api/services", headers={"X-Request-ID": "recap-42"})
            made = client.get("/api/services", headers={"X-Request-ID": "bad id\nx=1"})
    finally:
        log.removeHandler(extra)
        log.setLevel(old_level)
    assert given.headers["x-request-id"] == "recap-42"
    assert made.headers["x-request-id"] != "bad id\nx=1" and len(made.headers["x-request-id"]) == 16
    lines = out.getvalue().splitlines()
    access = [ln for ln in lines if "logger=app.access" in ln and "request_id=recap-42" in ln]
    assert len(access) == 1 and "status=200" in access[0] and 'msg="GET /api/services 200"' in access[0]
    assert access[0].startswith("ts=20") and " level=info " in access[0]
