"""SpeechModelsManager against the simulated Spark 2: real sshd, real Docker Engine,
the real speech server (CPU engine) inside parakeet-asr."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from helpers import control, inspect, sim_settings, wait_for
from sim.spark2 import APP_DIR, PATCHES

pytestmark = pytest.mark.sim


def settings(sim, overlay: Path | None = None, **extra):
    return sim_settings(sim, overlay_dir=overlay or PATCHES, speech_models_cache_s=0,
                        reapply_health_timeout_s=60, **extra)


def overlay_copy(tmp_path: Path, edit: str | None = None, text: str = "") -> Path:
    """The shipped overlay, with `text` appended to file `edit`."""
    target = tmp_path / "overlay"
    shutil.copytree(PATCHES, target)
    if edit:
        with (target / edit).open("a") as f:
            f.write(text)
    return target


def status(client) -> dict:
    response = client.get("/api/speech-models")
    assert response.status_code == 200, response.text
    return response.json()


def run_job(client, kind: str = "reapply") -> dict:
    started = client.post(f"/api/speech-models/{kind}")
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    return wait_for(lambda: (j := client.get(f"/api/speech-models/jobs/{job_id}").json())
                    ["status"] != "running" and j, timeout=120, what=f"{kind} job to end")


def container_sha(sim, name: str) -> str:
    out = sim.docker("exec", "parakeet-asr", "sha256sum", f"{APP_DIR}/{name}").stdout
    return out.decode().split()[0]


def local_sha(name: str) -> str:
    return hashlib.sha256((PATCHES / name).read_bytes()).hexdigest()


def test_fresh_deploy_is_in_sync(sim):
    with control(settings(sim)) as client:
        body = wait_for(lambda: (b := status(client))["models"] and b, what="models listed")
    assert body["status"] == "in_sync"
    assert {f["status"] for f in body["files"]} == {"in_sync"}
    assert len(body["files"]) == len(list(PATCHES.glob("*.py")))
    assert body["container"]["running"] is True
    assert "whisper/tiny.en+pocketsphinx-align" in body["models"]


def test_edited_file_is_drift_and_deleted_file_is_missing(sim):
    sim.docker("exec", "parakeet-asr", "sh", "-c", f"echo '# hotfix' >> {APP_DIR}/formats.py")
    with control(settings(sim)) as client:
        drift = status(client)
        sim.docker("exec", "parakeet-asr", "rm", f"{APP_DIR}/engines.py")
        missing = status(client)
    by_name = {f["name"]: f for f in drift["files"]}
    assert drift["status"] == "drift"
    assert by_name["formats.py"]["status"] == "drift"
    assert by_name["formats.py"]["container_sha256"] == container_sha(sim, "formats.py")
    assert by_name["main.py"]["status"] == "in_sync"
    assert missing["status"] == "missing"
    engines = next(f for f in missing["files"] if f["name"] == "engines.py")
    assert engines["status"] == "missing" and engines["container_sha256"] is None


def test_reapply_fixes_drift_and_restarts(sim):
    sim.docker("exec", "parakeet-asr", "sh", "-c", f"echo '# hotfix' >> {APP_DIR}/main.py")
    sim.docker("exec", "parakeet-asr", "rm", f"{APP_DIR}/formats.py")
    started_at = inspect(sim, "parakeet-asr", "{{.State.StartedAt}}")
    with control(settings(sim)) as client:
        first = status(client)
        assert first["status"] == "missing", first["detail"]
        job = run_job(client)
        after = status(client)
    assert job["status"] == "done", job
    assert [s["status"] for s in job["steps"]] == ["ok"] * 7
    assert all(s["duration_s"] is not None for s in job["steps"])
    assert after["status"] == "in_sync"
    assert inspect(sim, "parakeet-asr", "{{.State.StartedAt}}") != started_at
    assert container_sha(sim, "main.py") == local_sha("main.py")


def test_syntax_error_is_rejected_without_restart(sim, tmp_path):
    broken = overlay_copy(tmp_path, "formats.py", "\ndef broken(:\n")
    started_at = inspect(sim, "parakeet-asr", "{{.State.StartedAt}}")
    with control(settings(sim, broken)) as client:
        job = run_job(client)
    steps = {s["name"]: s for s in job["steps"]}
    assert job["status"] == "failed" and job["rolled_back"] is False
    assert steps["verify"]["status"] == "failed"
    assert "SyntaxError" in steps["verify"]["detail"]
    assert steps["restart"]["status"] == "skipped"
    assert "not restarted" in job["outcome"]
    assert inspect(sim, "parakeet-asr", "{{.State.StartedAt}}") == started_at
    assert container_sha(sim, "formats.py") == local_sha("formats.py")  # originals back


def test_overlay_failing_at_import_is_rolled_back(sim, tmp_path):
    broken = overlay_copy(tmp_path, "formats.py", "\nraise RuntimeError('broken overlay')\n")
    with control(settings(sim, broken)) as client:
        job = run_job(client)
        healthy = client.get("/api/services/parakeet-asr").json()
    steps = {s["name"]: s for s in job["steps"]}
    assert job["status"] == "failed" and job["rolled_back"] is True
    assert job["outcome"].startswith("rolled back:")
    assert "broken overlay" in job["outcome"]
    assert steps["wait_health"]["status"] == "failed"
    assert container_sha(sim, "formats.py") == local_sha("formats.py")
    assert inspect(sim, "parakeet-asr", "{{.State.Running}}") == "true"
    assert healthy["health"]["ok"] is True


def test_second_job_is_409_naming_the_running_one(sim):
    with control(settings(sim)) as client:
        first = client.post("/api/speech-models/reapply").json()
        second = client.post("/api/speech-models/restart")
        service_action = client.post("/api/services/parakeet-asr/restart")
        wait_for(lambda: client.get(f"/api/speech-models/jobs/{first['id']}").json()
                 ["status"] != "running", timeout=120, what="first job")
    assert second.status_code == 409
    assert first["id"] in second.json()["detail"]
    assert service_action.status_code == 409  # the job holds the service too


def test_stream_is_ordered_and_a_late_joiner_gets_the_replay(sim):
    with control(settings(sim)) as client:
        job_id = client.post("/api/speech-models/restart").json()["id"]
        early: list = []
        reader = threading.Thread(target=lambda: early.extend(_events(client, job_id)))
        reader.start()
        reader.join(120)
        late = _events(client, job_id)
    assert [e["id"] for e in early] == [str(i) for i in range(len(early))]
    assert early[-1]["event"] == "done"
    assert late == early  # joined after the end: the whole story, same order
    running_then_ok = [(json.loads(e["data"])["steps"][0]["status"]) for e in early[:2]]
    assert running_then_ok == ["running", "ok"]


def test_restart_job_waits_for_models(sim):
    with control(settings(sim)) as client:
        job = run_job(client, "restart")
    assert job["status"] == "done"
    assert [s["name"] for s in job["steps"]] == ["preflight", "restart", "wait_health"]
    assert "models loaded" in job["steps"][-1]["detail"]


def _events(client, job_id: str) -> list[dict[str, str]]:
    events, current = [], {}
    with client.stream("GET", f"/api/speech-models/jobs/{job_id}/stream") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.strip():
                if current:
                    events.append(current)
                current = {}
                continue
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        events.append(current)
    return events
