"""The install manager's pure parts: the build context and its digest, the `docker run`
and `docker build` arguments, and the job log that streams a build. The real builds,
runs and switches are in tests/sim/test_install_manager.py."""

from __future__ import annotations

import asyncio
import io
import shlex
import tarfile

import pytest

from app import progress
from app.config import Settings
from app.progress import Job
from app.speech_server.build import build_argv
from app.speech_server.container import RunPlan, plan, spare_port, url_at
from app.speech_server.context import ROOT, ContextMissing, context_digest, load_context
from helpers import copy_context


def test_the_context_is_this_checkouts_dockerfile_lock_and_overlay():
    context = load_context(ROOT)
    assert {"image/Dockerfile.speech", "pyproject.toml", "constraints/main.txt",
            "constraints/nemo.txt", "image/parakeet_patches/main.py",
            "image/parakeet_patches/campplus.onnx"} <= set(context.files)
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in context.files)
    assert context.files["image/parakeet_patches/main.py"] == (
        ROOT / "image/parakeet_patches/main.py").read_bytes()


def test_the_digest_follows_every_byte_and_the_tar_is_reproducible(tmp_path):
    folder = copy_context(tmp_path / "a")
    first = load_context(folder)
    again = load_context(folder)
    assert first.digest == again.digest and first.tar() == again.tar()
    (folder / "image/parakeet_patches/__pycache__").mkdir()
    (folder / "image/parakeet_patches/__pycache__/x.pyc").write_bytes(b"junk")
    assert load_context(folder).digest == first.digest  # bytecode is not context
    (folder / "constraints/nemo.txt").write_text(
        (folder / "constraints/nemo.txt").read_text() + "\n")
    assert load_context(folder).digest != first.digest
    with tarfile.open(fileobj=io.BytesIO(first.tar())) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(first.files)
    assert {(m.mtime, m.uid, m.mode) for m in members} == {(0, 0, 0o644)}


def test_the_cached_digest_follows_a_changed_file(tmp_path):
    folder = copy_context(tmp_path / "a")
    first = context_digest(folder)
    assert first == load_context(folder).digest == context_digest(folder)
    lock = folder / "constraints/nemo.txt"
    lock.write_text(lock.read_text() + "\n")  # size (and mtime) change
    assert context_digest(folder) == load_context(folder).digest != first
    lock.unlink()
    with pytest.raises(ContextMissing, match="constraints/nemo.txt"):
        context_digest(folder)


def test_a_missing_context_file_is_named(tmp_path):
    folder = copy_context(tmp_path / "a")
    (folder / "constraints/nemo.txt").unlink()
    with pytest.raises(ContextMissing, match="constraints/nemo.txt"):
        load_context(folder)
    with pytest.raises(ContextMissing, match="image/parakeet_patches"):
        load_context(tmp_path / "empty")


def settings(**values) -> Settings:
    base = dict(spark2_host="spark2.lan", parakeet_memory_limit="40g")
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def test_the_container_runs_capped_without_swap_on_its_port():
    argv = plan(settings(), name="parakeet-asr", image="r:abc", port=8000, gpus=True).argv()
    assert argv[:4] == ["run", "-d", "--name", "parakeet-asr"]
    cap = str(40 * 1024**3)
    assert argv[argv.index("--memory") + 1] == argv[argv.index("--memory-swap") + 1] == cap
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    assert argv[argv.index("-p") + 1] == "8000:8000"
    assert argv[argv.index("--gpus") + 1] == "all"
    assert argv[argv.index("-v") + 1] == "parakeet-models:/models"
    assert "HF_HOME=/models/huggingface" in argv and argv[-1] == "r:abc"
    assert "--label" not in argv  # the service itself is no candidate


def test_host_networking_moves_the_server_not_a_mapping_and_models_are_passed():
    s = settings(speech_server_network="host", asr_model="/models/p.nemo",
                 embedding_model="titanet_large", speech_server_model_volume="")
    argv = plan(s, name="parakeet-asr-next", image="r:abc", port=8001, gpus=False,
                candidate=True).argv()
    assert "-p" not in argv and argv[argv.index("--network") + 1] == "host"
    assert "PORT=8001" in argv and "ASR_MODEL=/models/p.nemo" in argv
    assert "EMBEDDING_MODEL=titanet_large" in argv and "DIAR_MODEL" not in " ".join(argv)
    assert "--gpus" not in argv and "-v" not in argv
    assert argv[argv.index("--label") + 1] == "spark-control.candidate=1"


def test_ports_and_urls_follow_parakeet_url():
    s = settings(parakeet_url="http://10.0.0.5:8010")
    assert spare_port(s) == 8011 and url_at(s, 8011) == "http://10.0.0.5:8011"
    assert spare_port(settings(speech_server_spare_port=9100)) == 9100
    assert RunPlan("n", "i", 1, 6 << 20).argv()[-1] == "i"


def test_the_build_argv_reads_the_context_from_stdin_and_quotes_everything():
    class FakeDocker:
        prefix = ["sudo", "docker"]

    argv = build_argv(FakeDocker(), tag="r:build-1", build_args={"BASE": "nvcr.io/x:1 ;rm"},
                      labels={"spark-control.job": "1"}, network="host", no_cache=True)
    assert argv[:3] == ["sudo", "docker", "build"] and argv[-1] == "-"
    assert "--no-cache" in argv and argv[argv.index("--network") + 1] == "host"
    assert shlex.split(shlex.join(argv)) == argv  # nothing for the remote shell to read
    assert "BASE=nvcr.io/x:1 ;rm" in argv


def test_the_job_log_streams_lines_and_keeps_the_last_ones(monkeypatch):
    monkeypatch.setattr(progress, "MAX_LOG_LINES", 5)

    async def scenario() -> tuple[list, list, Job]:
        job = Job("install", ["build"])
        await job.begin("build")
        early = []

        async def follow() -> None:
            async for event in job.follow():
                early.append(event)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0)
        for i in range(12):
            await job.log(f"line {i}\r\n")
            await asyncio.sleep(0)  # lines arrive over time; the follower keeps up
        await job.log("x" * 5000)
        await job.finish(True, "done")
        await follower
        late = [e async for e in job.follow()]
        return early, late, job

    early, late, job = asyncio.run(scenario())
    assert [e.line for e in early if e.event == "log"][:3] == ["line 0", "line 1", "line 2"]
    assert job.view.log_lines == 13 and len(job.log_tail(100)) == 5
    late_lines = [e.line for e in late if e.event == "log"]
    assert late_lines[:4] == ["line 8", "line 9", "line 10", "line 11"]
    assert late_lines[-1].endswith("[...]") and len(late_lines[-1]) < 2100
    seqs = [e.seq for e in late]
    assert seqs == sorted(seqs) and late[-1].event == "done"
    assert late[0].event == "step"  # step snapshots are never dropped
    sse = progress.sse_event(late[1])
    assert sse["event"] == "log" and '"line"' in sse["data"] and '"steps"' not in sse["data"]
