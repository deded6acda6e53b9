"""Known speakers: the voice library on disk, matching, naming, and /api/speakers with
the speech server's faults injected (respx). The real speech server runs them in
tests/speech/test_known_speakers.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
import respx

from app.audio.jobstore import JobStore
from app.config import Settings
from app.audio.pipeline import SpeakersResult, SpeakerSegment, ModelNames, VoicePrint, Voices
from app.speakers.library import VoiceLibrary
from app.audio.stitching import unit
from app.speakers.naming import clean_name, named
from app.speakers.thresholds import GE2E_MODEL
from fake_speech import DIAR, URL, answer_speech
from helpers import authed
from speech_audio import wav_bytes


def voice(*values: float, seconds: float = 30.0) -> VoicePrint:
    return VoicePrint(vector=list(unit(values)), seconds=seconds)


@pytest.mark.parametrize("raw, name", [("  Alice   Smith ", "Alice Smith"), ("O'Neil", "O'Neil"),
                                       ("Zoë-Ann (PM)", "Zoë-Ann (PM)"), ("李雷", "李雷")])
def test_names_are_tidied(raw, name):
    assert clean_name(raw) == name


@pytest.mark.parametrize("raw", ["", "   ", "x" * 65, "<v Bob>", "Speaker_2", "speaker_x",
                                 "-dash first", "tab\there\x00", "a\nb:c"])
def test_names_that_would_confuse_labels_or_files_are_refused(raw):
    with pytest.raises(ValueError):
        clean_name(raw)


# -- the library on disk ----------------------------------------------------------------


def test_library_keeps_each_print_per_model(tmp_path):
    async def go() -> None:
        library = VoiceLibrary(tmp_path / "speakers.sqlite3")
        alice = await library.create("Alice")
        await library.add_sample(alice, "ge2e", [1, 0, 0], 20, "upload")
        await library.add_sample(alice, "ge2e", [0, 1, 0], 30, "job")
        await library.add_sample(alice, "titanet", [0, 0, 1, 0], 10, "upload")
        people = await library.known("ge2e")
        assert [p.name for p in people] == ["Alice"]
        assert people[0].vectors.tolist() == [[1, 0, 0], [0, 1, 0]]  # one row per sample
        assert people[0].score(unit([1, 0.1, 0])) == pytest.approx(unit([1, 0.1, 0])[0])
        assert [p.dim for p in await library.known("titanet")] == [4]
        assert await library.known("other") == []
        shown = await library.get(alice)
        assert [(s.model, s.seconds, s.source) for s in shown.samples] == \
            [("ge2e", 20, "upload"), ("ge2e", 30, "job"), ("titanet", 10, "upload")]
        assert "vector" not in shown.model_dump_json()
        library.close()
    asyncio.run(go())
    files = list(tmp_path.glob("speakers.sqlite3*"))
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files), files


def test_a_jobs_file_from_before_voiceprints_gets_the_column(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.executescript("CREATE TABLE audio_jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
                      "status TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL, "
                      "result TEXT); INSERT INTO audio_jobs VALUES ('j1', '{}', 'done', 1, 2, "
                      "'{\"x\": 1}');")
    old.close()
    (tmp_path / "jobs.sqlite3").chmod(0o644)
    store = JobStore(tmp_path / "jobs.sqlite3")
    assert asyncio.run(store.result("j1")) == ('{"x": 1}', None)
    store.close()
    assert (tmp_path / "jobs.sqlite3").stat().st_mode & 0o077 == 0


def test_deleting_a_person_removes_their_prints_from_the_file(tmp_path):
    marker = np.array([0.123456, 0.654321, 0.111111], dtype=np.float64)

    async def go() -> None:
        library = VoiceLibrary(tmp_path / "speakers.sqlite3")
        bob = await library.create("Bob")
        await library.add_sample(bob, "ge2e", marker, 20, "upload")
        assert on_disk(tmp_path, unit(marker))
        assert await library.delete(bob)
        assert await library.known("ge2e") == [] and await library.get(bob) is None
        assert not on_disk(tmp_path, unit(marker))
        assert not await library.delete(bob)
        library.close()
    asyncio.run(go())


def on_disk(folder: Path, vector: np.ndarray) -> bool:
    blob = vector.astype(np.float32).tobytes()
    return any(blob in path.read_bytes() for path in folder.glob("speakers.sqlite3*"))


# -- naming a result --------------------------------------------------------------------


def test_named_result_replaces_labels_and_says_which(tmp_path):
    result = SpeakersResult(duration=4, language="en", speakers_detected=2, models=ModelNames(
        transcription="a", diarization="d"), segments=[
        SpeakerSegment(start_ms=0, end_ms=1000, speaker="Speaker_0", text="Hi."),
        SpeakerSegment(start_ms=1000, end_ms=2000, speaker="Speaker_1", text="Hello.")])
    voices = Voices(model=GE2E_MODEL, prints={"Speaker_0": voice(0, 1), "Speaker_1": voice(1, 0)})

    async def go() -> SpeakersResult:
        library = VoiceLibrary(tmp_path / "s.sqlite3")
        await library.add_sample(await library.create("Bob"), GE2E_MODEL, [1, 0.01], 9, "job")
        await library.add_sample(await library.create("Cy"), "titanet", [0, 1], 9, "job")
        return await named(result, voices, library)
    out = asyncio.run(go())
    assert [s.speaker for s in out.segments] == ["Speaker_0", "Bob"]
    assert [(s.label, s.name) for s in out.speakers] == [("Speaker_0", None), ("Speaker_1", "Bob")]
    assert out.speakers[1].score == pytest.approx(1.0, abs=1e-3)
    assert [s.speaker for s in result.segments] == ["Speaker_0", "Speaker_1"]  # not changed


# -- the API ----------------------------------------------------------------------------


def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, parakeet_url=URL, data_dir=tmp_path, max_upload_mb=2)


def finished_job(client) -> str:
    response = client.post("/api/audio/jobs", files={"file": ("t.wav", wav_bytes(2, tone=200))})
    job = response.json()["id"]
    for _ in range(200):
        if client.get(f"/api/audio/jobs/{job}").json()["status"] == "done":
            return job
        asyncio.run(asyncio.sleep(0.02))
    raise AssertionError("the job did not finish")


@respx.mock
def test_enroll_from_a_job_then_rename_and_delete(tmp_path, monkeypatch):
    monkeypatch.setattr("app.speakers.enroll.MIN_ENROLL_S", 1.0)
    answer_speech()
    with authed(settings(tmp_path)) as client:
        job = finished_job(client)
        made = client.post("/api/speakers", json={"name": "Alice", "job_id": job,
                                                  "label": "Speaker_0"})
        assert made.status_code == 201, made.text
        alice = made.json()["id"]
        again = client.post("/api/speakers", json={"name": "alice", "job_id": job,
                                                   "label": "Speaker_0"})
        assert again.status_code == 409 and alice in again.json()["detail"]
        # matched at MIN_MATCH_S? the fake's speaker talks 2 s: too little to be named
        assert client.get(f"/api/audio/jobs/{job}/result").json()["speakers"] == \
            [{"label": "Speaker_0", "name": None, "score": None, "suggested": None}]
        renamed = client.patch(f"/api/speakers/{alice}", json={"name": "Alicia"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Alicia"
        assert client.delete(f"/api/speakers/{alice}").status_code == 204
        assert client.get("/api/speakers").json()["speakers"] == []
        assert client.delete(f"/api/speakers/{alice}").status_code == 404


@respx.mock
@pytest.mark.parametrize("body, status, words", [
    ({"name": "Alice", "job_id": "nope", "label": "Speaker_0"}, 404, "no audio job"),
    ({"name": "Speaker_3", "job_id": "x", "label": "Speaker_0"}, 422,
     "body field 'name': 'Speaker_…' is how unnamed speakers"),
    ({"name": "Alice", "label": "Speaker_0"}, 422, "job_id' is missing"),
    ({"name": "Alice", "job_id": "JOB", "label": "Speaker_7"}, 422, "no speaker 'Speaker_7'"),
    ({"name": "Alice", "job_id": "JOB", "label": "Speaker_0"}, 422, "at least 8 s"),
])
def test_enrolling_from_a_job_refuses_clearly(tmp_path, body, status, words):
    answer_speech()
    with authed(settings(tmp_path)) as client:
        if body.get("job_id") == "JOB":
            body = {**body, "job_id": finished_job(client)}
        response = client.post("/api/speakers", json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@respx.mock
@pytest.mark.parametrize("answer, status, words", [
    ({**DIAR, "segments": [{"start_s": 0, "end_s": 9, "speaker": "Speaker_0", "confidence": 1},
                           {"start_s": 9, "end_s": 12, "speaker": "Speaker_1", "confidence": 1}],
      "fingerprints": {"Speaker_0": [1, 0], "Speaker_1": [0, 1]}}, 422, "holds 2 voices"),
    ({**DIAR, "segments": [], "fingerprints": {}}, 422, "no speech"),
    ({**DIAR, "segments": [{"start_s": 0, "end_s": 3, "speaker": "Speaker_0", "confidence": 1}]},
     422, "only 3.0 s of speech"),
])
def test_enrolling_from_a_sample_refuses_clearly(tmp_path, answer, status, words):
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=answer)
    with authed(settings(tmp_path)) as client:
        response = client.post("/api/speakers", data={"name": "Alice"},
                               files={"file": ("a.wav", wav_bytes(12, tone=200))})
        assert client.get("/api/speakers").json()["speakers"] == []  # nothing half-made
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@respx.mock
@pytest.mark.parametrize("data, files, status, words", [
    ({}, {"file": ("a.wav", wav_bytes(10, tone=200))}, 422, "'name'"),
    ({"name": "Bob"}, {"file": ("a.txt", b"not audio at all")}, 415, "not a readable audio"),
    ({"name": "Bob"}, {"file": ("a.wav", wav_bytes(70, rate=8000))}, 413, "one person"),
    ({"name": "<b>"}, {"file": ("a.wav", wav_bytes(10, tone=200))}, 422, "letters, digits"),
])
def test_bad_samples_are_refused_before_the_speech_server(tmp_path, data, files, status, words):
    route = respx.post(f"{URL}/v1/audio/diarize-chunk").respond(json=DIAR)
    config = settings(tmp_path).model_copy(update={"chunk_threshold_s": 60, "chunk_s": 60})
    with authed(config) as client:
        response = client.post("/api/speakers", data=data, files=files)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert not route.called
    assert not any((tmp_path / "spool").iterdir())


@respx.mock
def test_a_failing_speech_server_is_503_and_nothing_is_logged_about_voices(tmp_path, caplog):
    respx.post(f"{URL}/v1/audio/diarize-chunk").respond(500, json={"detail": "CUDA error"})
    caplog.set_level(logging.DEBUG)
    with authed(settings(tmp_path)) as client:
        response = client.post("/api/speakers", data={"name": "Mallory Quinn"},
                               files={"file": ("a.wav", wav_bytes(10, tone=200))})
    assert response.status_code == 503 and "CUDA error" in response.json()["detail"]
    assert "Mallory" not in caplog.text


@respx.mock
def test_a_whole_session_logs_no_name_score_or_print(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("app.speakers.enroll.MIN_ENROLL_S", 1.0)
    monkeypatch.setattr("app.speakers.naming.MIN_MATCH_S", 1.0)
    answer_speech()
    caplog.set_level(logging.DEBUG)
    config = settings(tmp_path).model_copy(update={"speaker_match_threshold": 0.5})
    with authed(config) as client:
        job = finished_job(client)
        alice = client.post("/api/speakers", json={"name": "Quentin Zed", "job_id": job,
                                                   "label": "Speaker_0"}).json()["id"]
        body = client.get(f"/api/audio/jobs/{job}/result").json()
        client.patch(f"/api/speakers/{alice}", json={"name": "Rosalind Yu"})
        client.delete(f"/api/speakers/{alice}")
    assert body["speakers"][0]["name"] == "Quentin Zed"
    for secret in ("Quentin", "Rosalind", "[0.6, 0.8]", "0.6, 0.8"):
        assert secret not in caplog.text, secret


def test_stored_prints_never_leave_through_the_api(tmp_path):
    with authed(settings(tmp_path)) as client:
        spec = client.get("/openapi.json").json()
    # /api/audio/diarize-chunk is the speech server's own answer (prints of the upload
    # just sent), by design; nothing else carries a print.
    paths = {p: v for p, v in spec["paths"].items() if p != "/api/audio/diarize-chunk"}
    assert "vector" not in str(paths) and "fingerprints" not in str(paths)
    assert "VoicePrint" not in spec["components"]["schemas"]


@respx.mock
def test_a_deleted_job_takes_its_prints_with_it(tmp_path):
    answer_speech()
    with authed(settings(tmp_path)) as client:
        job = finished_job(client)
        assert client.delete(f"/api/audio/jobs/{job}").status_code == 204
    blob = np.array([0.6, 0.8]).tobytes()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("jobs.sqlite3*"))
    assert b"0.6,0.8" not in data and b"[0.6, 0.8]" not in data and blob not in data
