"""Audio jobs: lifecycle, SSE progress, persistence across restarts, retention,
cancellation, queue limit and faults (respx upstream; the real speech server runs
them in tests/speech/test_pipeline.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import respx
from fastapi.testclient import TestClient

from app.config import Settings
from app.audio.jobstore import JobStore
from helpers import authed
from fake_speech import DIAR, URL, WORDS, answer_speech
from speech_audio import wav_bytes


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"parakeet_url": URL, "data_dir": tmp_path, "max_upload_mb": 1}
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[arg-type]


def submit(client: TestClient, seconds: float = 2.0, name: str = "talk.wav") -> dict:
    response = client.post("/api/audio/jobs",
                           files={"file": (name, wav_bytes(seconds, tone=200), "audio/wav")})
    assert response.status_code == 202, response.text
    return response.json()


def events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    out, name = [], ""
    with client.stream("GET", f"/api/audio/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((name, json.loads(line.split(":", 1)[1])))
    return out


def spool_empty(tmp_path: Path) -> bool:
    spool = tmp_path / "spool"
    return not spool.exists() or not any(spool.iterdir())


@respx.mock
def test_job_runs_to_done_with_progress_and_result_in_every_format(tmp_path):
    answer_speech()
    with authed(settings(tmp_path)) as client:
        job = submit(client)
        assert job["status"] in ("queued", "running") and job["filename"] == "talk.wav"
        stream = events(client, job["id"])
        assert stream[-1][0] == "done" and stream[-1][1]["percent"] == 100
        assert all(name == "progress" for name, _ in stream[:-1])
        result = client.get(f"/api/audio/jobs/{job['id']}/result").json()
        assert result["segments"][0]["text"] == "Hi there."
        srt = client.get(f"/api/audio/jobs/{job['id']}/result?format=srt").text
        assert "Speaker_0: Hi there." in srt
        rttm = client.get(f"/api/audio/jobs/{job['id']}/result?format=rttm").text
        assert rttm.startswith("SPEAKER talk 1 0.100 0.700 <NA> <NA> Speaker_0")
        listed = client.get("/api/audio/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
    assert spool_empty(tmp_path)


@respx.mock
def test_chunked_job_reports_chunk_i_of_n(tmp_path):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json={**DIAR, "fingerprints": {}})
    s = settings(tmp_path, chunk_threshold_s=40, chunk_s=40, chunk_overlap_s=5, max_upload_mb=8)
    with authed(s) as client:
        stream = events(client, submit(client, seconds=100)["id"])
    chunks = [(e["chunk"], e["chunks"]) for name, e in stream if e["stage"] == "transcribing"]
    assert chunks[-1] == (3, 3), stream
    percents = [e["percent"] for _, e in stream]
    assert percents == sorted(percents)  # never goes backwards


@respx.mock
def test_finished_results_survive_a_restart(tmp_path):
    answer_speech()
    with authed(settings(tmp_path)) as client:
        job_id = submit(client)["id"]
        assert events(client, job_id)[-1][0] == "done"
    with authed(settings(tmp_path)) as client:
        assert client.get(f"/api/audio/jobs/{job_id}").json()["status"] == "done"
        result = client.get(f"/api/audio/jobs/{job_id}/result").json()
        assert result["segments"][0]["speaker"] == "Speaker_0"
        assert [e[0] for e in events(client, job_id)] == ["done"]  # late joiner


@respx.mock
def test_a_job_cut_by_a_shutdown_is_failed_with_the_reason(tmp_path):
    answer_speech(transcription_delay_s=30)
    with authed(settings(tmp_path)) as client:
        job_id = submit(client)["id"]
        wait_status(client, job_id, "running")
    with authed(settings(tmp_path)) as client:
        job = client.get(f"/api/audio/jobs/{job_id}").json()
        assert job["status"] == "failed" and "stopped while this job was running" in job["error"]
        response = client.get(f"/api/audio/jobs/{job_id}/result")
        assert response.status_code == 409 and "submit the file again" in response.text
    assert spool_empty(tmp_path)


def test_a_job_left_running_by_a_killed_process_is_failed_at_the_next_start(tmp_path):
    state = {"id": "killed1", "filename": "a.wav", "status": "running", "stage": "transcribing",
             "duration": 5.0, "created_at": time.time()}
    store = JobStore(tmp_path / "jobs.sqlite3")
    asyncio.run(store.save("killed1", json.dumps(state), "running", state["created_at"], None))
    store.close()
    (tmp_path / "spool" / "job-killed1-x").mkdir(parents=True)
    with authed(settings(tmp_path)) as client:
        job = client.get("/api/audio/jobs/killed1").json()
    assert job["status"] == "failed"
    assert "restarted while this job was running" in job["error"]
    assert spool_empty(tmp_path)


@respx.mock
def test_results_expire_after_the_retention(tmp_path):
    answer_speech()
    with authed(settings(tmp_path, job_retention_h=0.5 / 3600)) as client:
        job = submit(client)
        done = events(client, job["id"])[-1][1]
        assert done["expires_at"] == pytest.approx(done["finished_at"] + 0.5)
        deadline = time.time() + 5
        while client.get(f"/api/audio/jobs/{job['id']}").status_code != 404:
            assert time.time() < deadline, "the job never expired"
            time.sleep(0.1)


@respx.mock
def test_delete_cancels_a_running_job_and_forgets_it(tmp_path):
    answer_speech(transcription_delay_s=30)
    with authed(settings(tmp_path)) as client:
        job_id = submit(client)["id"]
        wait_status(client, job_id, "running")
        result = client.get(f"/api/audio/jobs/{job_id}/result")
        assert result.status_code == 409 and "not ready" in result.text
        assert client.delete(f"/api/audio/jobs/{job_id}").status_code == 204
        assert client.get(f"/api/audio/jobs/{job_id}").status_code == 404
        assert client.delete(f"/api/audio/jobs/{job_id}").status_code == 404
        assert spool_empty(tmp_path)


@respx.mock
def test_queue_limit_refuses_with_429_instead_of_accepting(tmp_path):
    answer_speech(transcription_delay_s=30)
    with authed(settings(tmp_path, jobs_running=1, jobs_queue_max=1)) as client:
        first = submit(client)["id"]
        wait_status(client, first, "running")
        second = submit(client)
        assert second["status"] == "queued"
        response = client.post("/api/audio/jobs",
                               files={"file": ("c.wav", wav_bytes(1.0), "audio/wav")})
        assert response.status_code == 429 and "JOBS_QUEUE_MAX" in response.json()["detail"]
        assert response.headers["retry-after"] == "60"
        assert len(list((tmp_path / "spool").iterdir())) == 2  # the refused one is gone


@respx.mock
def test_a_chunk_failing_twice_fails_the_job_naming_the_chunk(tmp_path):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(json=WORDS)
    diarize = respx.post(f"{URL}/v1/audio/diarize-chunk").respond(500, text="CUDA error")
    s = settings(tmp_path, chunk_threshold_s=40, chunk_s=40, chunk_overlap_s=5, max_upload_mb=8)
    with authed(s) as client:
        final = events(client, submit(client, seconds=70)["id"])[-1]
    assert final[0] == "failed"
    assert "failed twice" in final[1]["error"] and "CUDA error" in final[1]["error"]
    assert "chunk 1 of 2" in final[1]["error"] or "chunk 2 of 2" in final[1]["error"]
    assert diarize.call_count >= 2
    assert spool_empty(tmp_path)


@pytest.mark.parametrize(("data", "status", "words"), [
    (b"", 422, "empty"),
    (b"plain text\n" * 40, 415, "not a readable audio"),
    (wav_bytes(0.0), 422, "0 s long"),
    (wav_bytes(40.0), 413, "MAX_UPLOAD_MB"),
], ids=["empty", "text", "zero-duration", "too-big"])
def test_bad_uploads_are_refused_before_a_job_exists(tmp_path, data, status, words):
    with authed(settings(tmp_path)) as client:
        response = client.post("/api/audio/jobs", files={"file": ("x.wav", data, "audio/wav")})
        assert response.status_code == status and words in response.json()["detail"]
        assert client.get("/api/audio/jobs").json()["jobs"] == []
    assert spool_empty(tmp_path)


@pytest.mark.parametrize("path", ["", "/events", "/result"])
def test_unknown_job_is_404(tmp_path, path):
    with authed(settings(tmp_path)) as client:
        response = client.get(f"/api/audio/jobs/nope{path}")
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_jobs_without_a_speech_server_are_503(tmp_path):
    with authed(Settings(_env_file=None, data_dir=tmp_path, local_speech=False)) as client:
        response = client.post("/api/audio/jobs",
                               files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")})
    assert response.status_code == 503 and "PARAKEET_URL" in response.json()["detail"]
    assert spool_empty(tmp_path)


def wait_status(client: TestClient, job_id: str, status: str, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while (now := client.get(f"/api/audio/jobs/{job_id}").json()["status"]) != status:
        assert time.time() < deadline, f"job stayed {now}"
        time.sleep(0.05)
