from __future__ import annotations

import asyncio
from pathlib import Path

from app.progress import Job
from app.overlay import Manifest, overall, parse_sha256sum

PATCHES = Path(__file__).resolve().parents[2] / "image" / "parakeet_patches"


def test_manifest_lists_every_python_file_of_the_overlay():
    manifest = Manifest(PATCHES, "/opt/parakeet/app")
    assert sorted(e.name for e in manifest.entries) == sorted(
        p.name for p in PATCHES.glob("*.py"))
    assert all(p.startswith("/opt/parakeet/app/") for p in manifest.remote_paths)


def test_compare_marks_in_sync_drift_and_missing(tmp_path):
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / "b.py").write_text("b = 1\n")
    (tmp_path / "c.py").write_text("c = 1\n")
    (tmp_path / "manifest.toml").write_text('[files]\n"a.py" = "a.py"\n"b.py" = "b.py"\n'
                                            '"c.py" = "c.py"\n')
    manifest = Manifest(tmp_path, "/app")
    a_sha = manifest.entries[0].sha256()
    output = f"{a_sha}  /app/a.py\n{'0' * 64}  /app/b.py\n"
    files = manifest.compare(parse_sha256sum(output))
    assert [f.status for f in files] == ["in_sync", "drift", "missing"]
    assert overall(files) == "missing"
    assert overall(files[:2]) == "drift" and overall(files[:1]) == "in_sync"


def test_sha256sum_output_with_spaces_in_paths_and_noise():
    out = f"{'a' * 64}  /app/my file.py\nsha256sum: /app/x.py: No such file\n"
    assert parse_sha256sum(out) == {"/app/my file.py": "a" * 64}


def test_job_followers_get_the_replay_then_live_events_in_order():
    async def scenario():
        job = Job("reapply", ["one", "two"])
        await job.begin("one")
        await job.end("one", "ok", "fine")
        early = asyncio.create_task(_collect(job))
        await asyncio.sleep(0.01)
        await job.begin("two")
        await job.end("two", "failed", "boom")
        await job.finish(False, "two failed: boom")
        late = await _collect(job)
        return await early, late, job

    early, late, job = asyncio.run(scenario())
    assert [e.seq for e in early] == [0, 1, 2, 3, 4]
    assert [e.event for e in early] == ["step"] * 4 + ["failed"]
    assert late == early
    assert early[1].job.steps[0].status == "ok"  # each event is a snapshot of its moment
    assert early[1].job.steps[1].status == "pending"
    assert job.view.steps[1].duration_s is not None


async def _collect(job: Job) -> list:
    return [event async for event in job.follow()]
