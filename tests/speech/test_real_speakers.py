"""Known speakers on real people's recordings (tests/data/real), end to end: spark-control
in front of the real speech server with its default CPU engine (CAM++ prints), at the
shipped thresholds. People enrolled from one recording are named in a conversation
assembled from other recordings of theirs, whole and chunked; people never enrolled
stay unnamed; a second recording of a person goes in as a second sample; a clip of
two people is refused with a message that says what to do; a near miss comes back as
a suggestion, never as the name, and confirming it adds a sample."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.speakers.thresholds import CAMPP, CAMPP_MODEL
from helpers import authed, run_job, wait_for
from speech_server import SpeechServer, start
from testaudio import real

ENROLLED = {"vctk-p225": "Alice", "vctk-p227": "Bob", "eagle-1": "Carol"}
STRANGERS = ("libri-3436", "arctic-aew")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SpeechServer]:
    """The speech server as shipped: CAM++, the default (CPU_SPEAKER_MODEL unset)."""
    yield from start("cpu", tmp_path_factory.mktemp("real-server"), {"CPU_SPEAKER_MODEL": ""})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Enrollment recordings, and a conversation of other recordings of two enrolled
    people with two strangers (reference turns beside it)."""
    folder = tmp_path_factory.mktemp("real")
    recs = real.recordings()
    out = {p: real.write(folder / f"{p}.wav", recs[p][0].audio()) for p in ENROLLED}
    out["carol-2"] = real.write(folder / "carol-2.wav", recs["eagle-1"][1].audio())
    people = [recs["vctk-p225"][2], recs["vctk-p227"][3], recs[STRANGERS[0]][0],
              recs[STRANGERS[1]][0]]
    out["conversation"] = folder / "conversation.wav"
    out["turns"] = real.conversation(people, out["conversation"], seed=3)  # type: ignore[assignment]
    two = [recs["vctk-p226"][1], recs["speechbrain-spk1"][0]]
    out["two-people"] = folder / "two.wav"
    real.conversation(two, out["two-people"], seed=4)
    return out


@pytest.fixture(scope="module")
def settings(server, tmp_path_factory) -> Settings:
    return Settings(_env_file=None, parakeet_url=server.url, poll_interval_s=0.5,
                    data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def client(settings) -> Iterator[TestClient]:
    with authed(settings) as test_client:
        wait_for(lambda: test_client.get("/api/speakers").json()["model"] == CAMPP_MODEL,
                 what="the CAM++ embedding model from /health")
        yield test_client


@pytest.fixture(scope="module")
def enrolled(client, files) -> dict[str, str]:
    """Alice, Bob and Carol enrolled from a sample each: name -> id."""
    ids = {}
    for person, name in ENROLLED.items():
        made = enroll(client, files[person], name)
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    return ids


def enroll(client: TestClient, wav: Path, name: str, speaker_id: str | None = None):
    url = f"/api/speakers/{speaker_id}/samples" if speaker_id else "/api/speakers"
    with wav.open("rb") as f:
        return client.post(url, data={} if speaker_id else {"name": name},
                           files={"file": (wav.name, f, "audio/wav")})


def heard(client: TestClient, wav: Path, **params: str) -> dict:
    with wav.open("rb") as f:
        response = client.post("/api/audio/transcribe-with-speakers", params=params,
                               files={"file": (wav.name, f, "audio/wav")})
    assert response.status_code == 200, response.text
    return response.json()


def owners(body: dict, turns) -> dict[str, str]:
    """Each speaker shown in the segments -> the real person they talk over most."""
    talk: dict[str, dict[str, float]] = {}
    for seg in body["segments"]:
        start, end = seg["start_ms"] / 1000, seg["end_ms"] / 1000
        for a, b, person in turns:
            overlap = min(end, b) - max(start, a)
            if overlap > 0:
                shares = talk.setdefault(seg["speaker"], {})
                shares[person] = shares.get(person, 0.0) + overlap
    found = {shown: max(shares, key=shares.__getitem__) for shown, shares in talk.items()}
    assert len(set(found.values())) == len(found), found  # one person, one speaker
    return found


@pytest.mark.parametrize("extra", [{}, {"chunk_threshold_s": 40, "chunk_s": 40,
                                        "chunk_overlap_s": 12}])
def test_enrolled_people_are_named_in_other_recordings_and_strangers_are_not(
        client, files, enrolled, settings, extra):
    with authed(settings.model_copy(update=extra)) as other:
        body = heard(other, files["conversation"])
    assert body["speakers_detected"] == 4 and (body["chunks"] > 1) == bool(extra)
    found = owners(body, files["turns"])
    named = {shown: person for shown, person in found.items() if not shown.startswith("Speaker_")}
    assert named == {"Alice": "vctk-p225", "Bob": "vctk-p227"}, found
    strangers = [s for s in body["speakers"] if found.get(s["name"] or s["label"]) in STRANGERS]
    assert len(strangers) == 2 and all(s["name"] is None for s in strangers)
    for entry in body["speakers"]:
        if entry["name"]:
            assert entry["score"] >= CAMPP.match and entry["suggested"] is None


def test_a_second_recording_is_a_second_sample(client, files, enrolled):
    added = enroll(client, files["carol-2"], "", enrolled["Carol"])
    assert added.status_code == 201, added.text
    carol = client.get(f"/api/speakers/{enrolled['Carol']}").json()
    assert [s["model"] for s in carol["samples"]] == [CAMPP_MODEL, CAMPP_MODEL]


def test_a_clip_of_two_people_is_refused_with_what_to_do(client, files):
    refused = enroll(client, files["two-people"], "Mallory")
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "2 voices" in detail and "another sample" in detail and "/samples" in detail


def test_a_near_miss_is_a_suggestion_and_confirming_it_adds_a_sample(client, files, enrolled,
                                                                    settings):
    job = run_job(client, files["conversation"])
    alice = next(s for s in client.get(f"/api/audio/jobs/{job}/result").json()["speakers"]
                 if s["name"] == "Alice")
    # The same job read with a threshold just over Alice's score: she is a near miss.
    strict = settings.model_copy(update={"speaker_match_threshold": alice["score"] + 0.005})
    with authed(strict) as c:
        body = c.get(f"/api/audio/jobs/{job}/result").json()
        entry = next(s for s in body["speakers"] if s["label"] == alice["label"])
        assert entry["name"] is None and entry["score"] is None  # never the name
        assert entry["suggested"] == {"name": "Alice", "score": alice["score"], "same_as": None}
        assert "Alice" not in {seg["speaker"] for seg in body["segments"]}
        confirmed = c.post(f"/api/speakers/{enrolled['Alice']}/samples",
                           json={"job_id": job, "label": entry["label"]})
    assert confirmed.status_code == 201, confirmed.text
    assert [s["source"] for s in confirmed.json()["samples"]] == ["upload", "job"]
