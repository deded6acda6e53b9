"""Two simulated hosts as one pool (each a private dockerd + sshd + the real speech
server): work spread over both, a host lost mid-job without losing the job, drain, a
rolling reapply, refusal of a host with another embedding model, and a member known by
its URL only. Speakers are checked on real people's recordings (tests/data/real)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.audio.stitching import plan_chunks
from app.config import HostSpec
from helpers import control, inspect, sim_settings, wait_for
from sim.spark2 import SimSpark2
from testaudio import real

pytestmark = pytest.mark.sim
CHUNKING = {"chunk_threshold_s": 40, "chunk_s": 40, "chunk_overlap_s": 12}
PEOPLE = ("vctk-p225", "vctk-p226", "vctk-p227")
PER_PERSON_S = 34.0  # three people: ~105 s, 40 s chunks overlapping by 12 s


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> tuple[Path, list]:
    """Three real people taking turns (each from several of their recordings), long
    enough for at least three 40 s chunks; and its first 60 s (two chunks)."""
    recs = real.recordings()
    wav = tmp_path_factory.mktemp("pool") / "three.wav"
    turns = real.conversation([_enough(recs[person]) for person in PEOPLE], wav, seed=5)
    audio = real.read(wav)
    seconds = audio.size / 16000
    assert len(plan_chunks(seconds, max_s=40, overlap_s=12)) >= 3, seconds
    real.write(wav.with_name("first-minute.wav"), audio[:60 * 16000])
    return wav, turns


def transcribed_on(client: TestClient, wav: Path) -> list[str]:
    """The hosts of the chunks of a synchronous transcription (both chunks at once)."""
    first_minute = wav.with_name("first-minute.wav")
    with first_minute.open("rb") as f:
        answer = client.post("/v1/audio/transcriptions", data={"response_format": "json"},
                             files={"file": (first_minute.name, f, "audio/wav")})
    assert answer.status_code == 200 and answer.json()["text"], answer.text
    return answer.headers["X-Speech-Hosts"].split(",")


def _enough(recordings: list[real.Recording]) -> real.Recording:
    """One person's clips, recording after recording, up to PER_PERSON_S."""
    clips: list[real.Clip] = []
    for clip in (c for r in recordings for c in r.clips):
        if sum(c.seconds for c in clips) >= PER_PERSON_S:
            break
        clips.append(clip)
    return real.Recording(recordings[0].speaker, tuple(clips))


def pool_settings(spark2: SimSpark2, spark1: SimSpark2, **overrides):
    hosts = [HostSpec(**spark1.host_entry("spark1"))]
    return sim_settings(spark2, hosts=hosts, **{**CHUNKING, **overrides})


def hosts(client: TestClient) -> dict[str, dict]:
    body = client.get("/api/hosts")
    assert body.status_code == 200, body.text
    return {h["pool"]["name"]: h for h in body.json()["hosts"]}


def both_active(client: TestClient) -> bool:
    return all(h["pool"]["state"] == "active" for h in hosts(client).values())


def submit(client: TestClient, wav: Path) -> str:
    with wav.open("rb") as f:
        job = client.post("/api/audio/jobs", files={"file": (wav.name, f, "audio/wav")},
                          params={"match_speakers": "false"})
    assert job.status_code == 202, job.text
    return job.json()["id"]


def finished(client: TestClient, job_id: str, timeout: float = 240) -> dict:
    job = wait_for(lambda: (j := client.get(f"/api/audio/jobs/{job_id}").json())["status"]
                   in ("done", "failed", "cancelled") and j, timeout, "the job to end")
    assert job["status"] == "done", job
    return job


def right_speakers(client: TestClient, job_id: str, turns) -> None:
    """Each real person is one speaker label, and each label one person."""
    body = client.get(f"/api/audio/jobs/{job_id}/result").json()
    talk: dict[str, dict[str, float]] = {}
    for seg in body["segments"]:
        start, end = seg["start_ms"] / 1000, seg["end_ms"] / 1000
        for a, b, person in turns:
            if min(end, b) > max(start, a):
                shares = talk.setdefault(seg["speaker"], {})
                shares[person] = shares.get(person, 0.0) + min(end, b) - max(start, a)
    owner = {label: max(s, key=s.__getitem__) for label, s in talk.items()}
    assert body["speakers_detected"] == len(PEOPLE), (body["speakers_detected"], owner)
    assert sorted(owner.values()) == sorted(PEOPLE), owner


def test_a_long_recording_runs_on_both_hosts_and_each_host_has_its_own_pages(pair, talk):
    spark2, spark1 = pair
    wav, turns = talk
    with control(pool_settings(spark2, spark1)) as client:
        wait_for(lambda: both_active(client), 30, "both hosts active")
        view = hosts(client)
        assert view["spark1"]["pool"]["managed"] and view["spark1"]["mode"] == "remote"
        job = finished(client, submit(client, wav))
        right_speakers(client, job["id"], turns)
        served = {name: h["pool"]["served"] for name, h in hosts(client).items()}
        for name, host in (("spark2", spark2), ("spark1", spark1)):
            own_pages(client, name, host)
        services = client.get("/api/services", params={"host": "spark1"}).json()
        missing = client.get("/api/services", params={"host": "spark9"})
    ran_on = [place["host"] for place in job["hosts"]]
    assert len(ran_on) == job["chunks"] >= 3
    assert set(ran_on) == {"spark1", "spark2"}, ran_on
    assert served["spark1"] == ran_on.count("spark1") and served["spark2"] == ran_on.count("spark2")
    assert [s["name"] for s in services["services"]] == ["parakeet-asr"]  # no TTS there
    assert missing.status_code == 404 and "spark1" in missing.json()["detail"]


def own_pages(client: TestClient, name: str, host: SimSpark2) -> None:
    """The host's registry (memory cap applied by its own docker), patches, host health
    and install manager, each read from that host."""
    asr = wait_for(lambda: (s := client.get("/api/services/parakeet-asr",
                                            params={"host": name}).json())["memory"]
                   ["cap_enforced"] and s, 30, f"the memory cap on {name}")
    assert asr["state"] == "healthy"
    assert inspect(host, "parakeet-asr", "{{.HostConfig.Memory}}") == str(1024**3)
    models = client.get("/api/speech-models", params={"host": name}).json()
    assert models["status"] == "in_sync", models
    assert client.get("/api/host", params={"host": name}).json()["reachable"] is True
    server = client.get("/api/speech-server", params={"host": name}).json()
    assert server["state"] == "unmanaged" and server["settings"]["port"] == \
        host.state.parakeet_port  # its own install manager, on its own port


def test_a_host_whose_speech_server_dies_mid_job_loses_nothing(pair, talk):
    spark2, spark1 = pair
    wav, turns = talk
    settings = pool_settings(spark2, spark1, gpu_in_flight=1)  # one chunk per host
    with control(settings) as client:
        wait_for(lambda: both_active(client), 30, "both hosts active")
        job_id = submit(client, wav)
        wait_for(lambda: hosts(client)["spark1"]["pool"]["in_flight"] == 1, 60,
                 "a chunk in flight on spark1")
        spark1.docker("kill", "parakeet-asr")
        job = finished(client, job_id)
        right_speakers(client, job_id, turns)
        spark1_view = hosts(client)["spark1"]["pool"]
    moved = [p for p in job["hosts"] if p["failed_on"]]
    assert moved and all(p["failed_on"] == ["spark1"] and p["host"] == "spark2"
                         for p in moved), job["hosts"]
    assert spark1_view["state"] == "down" and spark1_view["failed"] >= 1


def test_a_host_lost_over_ssh_mid_job_gets_no_more_chunks(pair, talk):
    spark2, spark1 = pair
    wav, turns = talk
    settings = pool_settings(spark2, spark1, gpu_in_flight=1)
    with control(settings) as client:
        wait_for(lambda: both_active(client), 30, "both hosts active")
        job_id = submit(client, wav)
        wait_for(lambda: hosts(client)["spark1"]["pool"]["in_flight"] == 1, 60,
                 "a chunk in flight on spark1")
        spark1.stop_sshd()
        lost = wait_for(lambda: (h := hosts(client)["spark1"]["pool"])["state"] == "down"
                        and h, 15, "spark1 down")
        placed_before = len(client.get(f"/api/audio/jobs/{job_id}").json()["hosts"])
        job = finished(client, job_id)
        right_speakers(client, job_id, turns)
    assert "SSH" in lost["detail"]
    on_spark1 = [p["chunk"] for p in job["hosts"] if p["host"] == "spark1"]
    # at most the chunk that was in flight when SSH went, and those placed before
    assert len(on_spark1) <= 1 + placed_before, job["hosts"]
    assert job["hosts"][-1]["host"] == "spark2"


def test_a_drained_host_gets_no_new_work_and_the_last_one_cannot_be_drained(pair, talk):
    spark2, spark1 = pair
    wav, _ = talk
    with control(pool_settings(spark2, spark1)) as client:
        wait_for(lambda: both_active(client), 30, "both hosts active")
        drained = client.put("/api/hosts/spark1/drain", json={"drained": True})
        assert drained.status_code == 200 and drained.json()["state"] == "drained"
        last = client.put("/api/hosts/spark2/drain", json={"drained": True})
        while_drained = transcribed_on(client, wav)
        assert client.put("/api/hosts/spark1/drain", json={"drained": False}).json()[
            "state"] == "active"
        undrained = transcribed_on(client, wav)
    assert last.status_code == 409 and "only host" in last.json()["detail"]
    assert while_drained == ["spark2", "spark2"]
    assert sorted(undrained) == ["spark1", "spark2"]  # the two chunks at once: one each


def test_reapply_on_all_hosts_rolls_one_host_at_a_time(pair):
    spark2, spark1 = pair
    with control(pool_settings(spark2, spark1)) as client:
        wait_for(lambda: both_active(client), 30, "both hosts active")
        started = client.post("/api/hosts/reapply")
        assert started.status_code == 202, started.text
        seen_drained: set[str] = set()

        def ended() -> dict | None:
            for name, h in hosts(client).items():
                if h["pool"]["drained"]:
                    seen_drained.add(name)
            job = client.get(f"/api/hosts/jobs/{started.json()['id']}").json()
            return job if job["status"] != "running" else None

        job = wait_for(ended, 180, "reapply on every host", interval=0.2)
        again = client.post("/api/hosts/reapply")
        again_id = again.json()["id"]
        wait_for(lambda: client.get(f"/api/hosts/jobs/{again_id}").json()["status"]
                 != "running", 180, "the second roll")
    assert job["status"] == "done", job
    assert [s["name"] for s in job["steps"]] == ["spark2", "spark1"]
    assert all(s["status"] == "ok" for s in job["steps"]), job["steps"]
    assert seen_drained  # each host was out of rotation while it was changed


def test_a_host_with_another_embedding_model_is_refused_with_the_reason(pair, talk):
    spark2, spark1 = pair
    wav, _ = talk
    spark1.reset_containers(env={"CPU_SPEAKER_MODEL": "ge2e"})  # the next test's fixture resets it
    with control(pool_settings(spark2, spark1)) as client:
        refused = wait_for(lambda: (h := hosts(client)["spark1"]["pool"])["state"] ==
                           "refused" and h, 30, "spark1 refused")
        ran_on = transcribed_on(client, wav)
        body = client.get("/api/hosts").json()
    assert refused["embedding_model"] != body["embedding_model"]
    assert refused["embedding_model"] in refused["detail"]
    assert body["embedding_model"] in refused["detail"] and "never compare" in refused["detail"]
    assert ran_on == ["spark2", "spark2"]


def test_a_member_known_by_its_url_only_takes_work_without_ssh(pair, talk):
    """An external endpoint (Triton/Riva or Ray Serve behind one URL): here spark1's
    speech server, named by its URL alone: health and work, no SSH management."""
    sim, spark1 = pair
    wav, turns = talk
    url = f"http://127.0.0.1:{spark1.state.parakeet_port}"
    settings = sim_settings(sim, hosts=[HostSpec(name="lb", parakeet_url=url)], **CHUNKING)
    with control(settings) as client:
        wait_for(lambda: both_active(client), 30, "both members active")
        lb = hosts(client)["lb"]
        job = finished(client, submit(client, wav))
        right_speakers(client, job["id"], turns)
        restart = client.post("/api/services/parakeet-asr/restart", params={"host": "lb"})
        patches = client.get("/api/speech-models", params={"host": "lb"}).json()
    assert lb["mode"] == "external" and not lb["pool"]["managed"]
    assert lb["pool"]["address"] == url
    assert {p["host"] for p in job["hosts"]} == {"lb", "spark2"}
    assert restart.status_code == 503 and "URL only" in restart.json()["detail"]
    assert patches["status"] == "local"
