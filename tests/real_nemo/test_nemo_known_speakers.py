"""Known speakers on the NeMo engine: spark-control in front of the speech server as a
real process with ENGINE=nemo (tiny random-weight models on the real toolkit). It
proves the TitaNet path end to end: the prints a job keeps are TitaNet's (192-d,
stored under the embedding model's name), a speaker enrolled from a job is named when
the same voices come back, and a print of another model (GE2E) is never compared.
Random weights give no accuracy figure: TitaNet's threshold is NeMo's published one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.speakers.thresholds import GE2E_MODEL
from helpers import authed, run_job
from speech_server import SpeechServer, start

TITANET = "nvidia/speakerverification_en_titanet_large"


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory) -> Iterator[SpeechServer]:
    yield from start("nemo", tmp_path_factory.mktemp("nemo-server"), {})


def test_a_speaker_enrolled_from_a_job_is_named_and_ge2e_prints_are_ignored(
        server, conversation, tmp_path, monkeypatch):
    # Random weights: a speaker may have little speech; what is tested is the path.
    monkeypatch.setattr("app.speakers.enroll.MIN_ENROLL_S", 0.5)
    monkeypatch.setattr("app.speakers.naming.MIN_MATCH_S", 0.5)
    settings = Settings(_env_file=None, parakeet_url=server.url, data_dir=tmp_path)
    with authed(settings) as client:
        job = run_job(client, conversation.wav)
        first = client.get(f"/api/audio/jobs/{job}/result").json()
        label = first["speakers"][0]["label"]
        made = client.post("/api/speakers", json={"name": "Alice", "job_id": job,
                                                  "label": label})
        assert made.status_code == 201, made.text
        assert made.json()["samples"][0]["model"] == TITANET
        ghost = asyncio.run(client.app.state.voices.create("Ghost"))
        asyncio.run(client.app.state.voices.add_sample(ghost, GE2E_MODEL, [1.0] * 256, 30,
                                                       "upload"))
        with conversation.wav.open("rb") as f:
            again = client.post("/api/audio/transcribe-with-speakers",
                                files={"file": ("c.wav", f, "audio/wav")}).json()
        listed = client.get("/api/speakers").json()
    assert listed["model"] == TITANET and listed["threshold"] == pytest.approx(0.4)
    named = {s["label"]: s["name"] for s in again["speakers"]}
    assert named[label] == "Alice" and "Ghost" not in named.values()
    assert any(s["speaker"] == "Alice" for s in again["segments"])

