"""transcribe-with-speakers end to end: spark-control in front of the real speech
server (CPU engine) on generated conversations with ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from helpers import authed
from app.audio.stitching import plan_chunks
from testaudio.evaluate import wer, word_speaker_accuracy
from testaudio.generate import make_conversation


def control(server, tmp_path: Path, **extra) -> TestClient:
    settings = Settings(_env_file=None, parakeet_url=server.url, data_dir=tmp_path / "data",
                        **extra)
    return authed(settings)


def hyp_words(body: dict) -> list[tuple[str, float, float, str]]:
    """Block text as (word, start, end, speaker); times spread over the block."""
    words = []
    for seg in body["segments"]:
        tokens = seg["text"].split()
        step = (seg["end_ms"] - seg["start_ms"]) / 1000 / max(1, len(tokens))
        for i, token in enumerate(tokens):
            start = seg["start_ms"] / 1000 + i * step
            words.append((token, start, start + step, seg["speaker"]))
    return words


def post(client: TestClient, wav: Path):
    with wav.open("rb") as f:
        return client.post("/api/audio/transcribe-with-speakers",
                           files={"file": (wav.name, f, "audio/wav")})


def test_three_speakers_contract_and_accuracy(cpu_server, conversation, tmp_path):
    with control(cpu_server, tmp_path) as client:
        response = post(client, conversation.wav)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"duration", "language", "speakers_detected", "segments", "models"}
    assert body["speakers_detected"] == 3
    assert body["models"]["transcription"].startswith("whisper")
    first = body["segments"][0]
    assert set(first) == {"start_ms", "end_ms", "speaker", "text"}
    assert all(" ," not in s["text"] and " ." not in s["text"] for s in body["segments"])
    accuracy = word_speaker_accuracy(conversation.lines, hyp_words(body))
    assert accuracy >= 0.90, accuracy
    assert not any((tmp_path / "data" / "spool").iterdir())  # nothing left behind


def test_chunked_four_speakers_keep_one_identity(cpu_server, tmp_path):
    conv = make_conversation(tmp_path / "conv4", speakers=4, seconds=150, seed=5)
    # chunks of 60 s with 15 s overlaps: the same code path as 10-minute chunks
    with control(cpu_server, tmp_path, chunk_threshold_s=60, chunk_s=60,
                 chunk_overlap_s=15) as client:
        response = post(client, conv.wav)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["chunks"] == len(plan_chunks(conv.duration, max_s=60, overlap_s=15)) >= 3
    assert body["speakers_detected"] == 4
    accuracy = word_speaker_accuracy(conv.lines, hyp_words(body))
    assert accuracy >= 0.85, accuracy


def test_openai_transcriptions_through_spark_control_chunked(cpu_server, conversation,
                                                             tmp_path):
    wav = conversation.wav.read_bytes()
    form = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    with control(cpu_server, tmp_path, chunk_threshold_s=40, chunk_s=40,
                 chunk_overlap_s=10) as client:  # 45 s: two chunks sharing 10 s
        chunked = client.post("/v1/audio/transcriptions",
                              files={"file": ("c.wav", wav, "audio/wav")}, data=form).json()
        srt = client.post("/v1/audio/transcriptions", files={"file": ("c.wav", wav)},
                          data={"response_format": "srt"})
    starts = [w["start"] for w in chunked["words"]]
    assert starts == sorted(starts)
    reference = " ".join(line.text for line in conversation.lines)
    assert wer(reference, " ".join(w["word"] for w in chunked["words"])) <= 0.5
    assert [s["id"] for s in chunked["segments"]] == list(range(len(chunked["segments"])))
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:0")


def test_long_four_speaker_job_at_default_chunking(cpu_server, tmp_path):
    """Over 10 minutes through the jobs API with the default 600 s chunks and 25 s
    overlap: one identity per voice across the chunks, progress as chunk i of n."""
    conv = make_conversation(tmp_path / "long", speakers=4, seconds=680, seed=7)
    spans = plan_chunks(conv.duration, max_s=600, overlap_s=25)
    assert len(spans) == 2
    for start, end in spans:  # the test's premise: every voice is heard in every chunk
        assert {ln.speaker for ln in conv.lines if start <= ln.start < end} == set(conv.speakers)
    with control(cpu_server, tmp_path) as client, conv.wav.open("rb") as f:
        job = client.post("/api/audio/jobs", files={"file": ("long.wav", f, "audio/wav")})
        assert job.status_code == 202, job.text
        events = job_events(client, job.json()["id"])
        result = client.get(f"/api/audio/jobs/{job.json()['id']}/result")
    assert events[-1]["status"] == "done", events[-1]
    assert (events[-2]["chunk"], events[-2]["chunks"]) == (2, 2)
    body = result.json()
    assert body["chunks"] == 2 and body["speakers_detected"] == 4
    accuracy = word_speaker_accuracy(conv.lines, hyp_words(body))
    assert accuracy >= 0.85, accuracy
    assert not any((tmp_path / "data" / "spool").iterdir())


def job_events(client: TestClient, job_id: str) -> list[dict]:
    with client.stream("GET", f"/api/audio/jobs/{job_id}/events") as stream:
        return [json.loads(line[5:]) for line in stream.iter_lines()
                if line.startswith("data:")]
