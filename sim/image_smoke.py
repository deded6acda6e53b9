"""The images as the owner deploys them, built and exercised on this machine.

    scripts/image-smoke     (CI runs it; about 6 minutes on 2 cores)

Builds image/Dockerfile and image/Dockerfile.speech unchanged (only their BASE argument
points at a Debian base made here: no registry can be reached) on a private dockerd,
then checks, with figures printed as it goes:
1. both images turn healthy on a user-defined network, and a generated two-speaker
   clip is transcribed with speakers through spark-control;
2. a root-owned /data and an SSH key uid 1000 cannot read stop spark-control with one
   line saying what to fix (no traceback);
3. docker-compose.yml with Compose v2 in the "without a Spark" setup of .env.example:
   the file is valid without any .env; both healthy, /readyz ready, parakeet-asr
   listed, a transcription; `compose stop` during a 3-minute transcription waits for
   it (the request completes, the server exits 0, not 137 after docker's 10 s);
4. the spark-control image pointed at the simulated Spark 2: services listed and
   healthy, the overlay in sync.
Every daemon, container, mount and temporary file it made is removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sim.images import Dockerd, cached_base, compose_command
from sim.spark2 import SimSpark2, _wait, free_ports
from testaudio.evaluate import wer
from testaudio.generate import make_conversation

REPO = Path(__file__).resolve().parents[1]
BASE = "spark-control-base:bookworm"
CONTROL, SPEECH = "spark-control:latest", "spark-control-speech:latest"
TOKEN = "image-smoke-token-0123456789"


def timed(what: str, work: Callable[[], object]) -> object:
    started = time.monotonic()
    result = work()
    print(f"image-smoke: {what}: {time.monotonic() - started:.1f} s", flush=True)
    return result


def build(daemon: Dockerd, work: Path) -> None:
    tarball = timed("Debian base (mmdebstrap, cached)", cached_base)
    daemon.run("import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
               str(tarball), BASE)
    for dockerfile, tag in (("image/Dockerfile.speech", SPEECH), ("image/Dockerfile", CONTROL)):
        timed(f"docker build {dockerfile}", lambda d=dockerfile, t=tag: daemon.run(
            "build", "--network", "host", "--build-arg", f"BASE={BASE}", "-f", d, "-t", t,
            str(REPO)))
    sizes = daemon.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
    print("image-smoke: sizes:", ", ".join(sizes.split("\n")).strip(", "), flush=True)


def api(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300,
                        headers={"Authorization": f"Bearer {TOKEN}"})


def transcribe(client: httpx.Client, wav: Path) -> dict:
    with wav.open("rb") as f:
        response = client.post("/api/audio/transcribe-with-speakers",
                               files={"file": (wav.name, f, "audio/wav")})
    assert response.status_code == 200, response.text
    return response.json()


def check_transcript(body: dict, conversation) -> float:  # type: ignore[no-untyped-def]
    reference = " ".join(line.text for line in conversation.lines)
    error = wer(reference, " ".join(s["text"] for s in body["segments"]))
    assert body["speakers_detected"] >= 1 and error <= 0.5, (error, body)
    return error


def run_pair(daemon: Dockerd, conversation, port: int) -> None:  # type: ignore[no-untyped-def]
    daemon.run("network", "create", "smoke")
    daemon.run("run", "-d", "--name", "speech", "--network", "smoke", SPEECH)
    daemon.run("run", "-d", "--name", "control", "--network", "smoke",
               "-p", f"127.0.0.1:{port}:9999", "-e", "PARAKEET_URL=http://speech:8000",
               "-e", f"SPARK_CONTROL_TOKEN={TOKEN}", CONTROL)
    timed("both containers healthy", lambda: daemon.wait_healthy("speech", "control"))
    with api(port) as client:
        body = timed("transcribe-with-speakers through spark-control",
                     lambda: transcribe(client, conversation.wav))
        print(f"image-smoke: WER {check_transcript(body, conversation):.1%}, "
              f"{body['speakers_detected']} speakers", flush=True)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
    daemon.run("rm", "-f", "speech", "control")
    daemon.run("network", "rm", "smoke")


def stop_during_a_transcription(stop: Callable[[], object], client: httpx.Client,
                                wav: Path, busy: Callable[[], bool]) -> None:
    """Stop the speech server while it transcribes `wav` (3 min: ~15 s of work, past
    docker's default 10 s): the request completes and the server exits 0, not 137."""
    done: dict[str, object] = {}
    request = threading.Thread(target=lambda: done.update(r=client.post(
        "/v1/audio/transcriptions", files={"file": (wav.name, wav.read_bytes())})))
    request.start()
    _wait(busy, 60, "the speech server to be busy")
    started = time.monotonic()
    stop()
    waited = time.monotonic() - started
    request.join(300)
    response = done.get("r")
    assert isinstance(response, httpx.Response) and response.status_code == 200, response
    assert waited > 10, f"the stop took {waited:.1f} s: the request was not in flight"
    print(f"image-smoke: stop during a transcription: waited {waited:.1f} s for it, "
          "request 200", flush=True)


def refusals(daemon: Dockerd, work: Path) -> None:
    """What uid 1000 meets on a badly prepared host: one line each, exit 2."""
    data = work / "root-data"
    data.mkdir(mode=0o755)
    key = work / "root-key"
    key.write_text("not readable by uid 1000\n")
    key.chmod(0o600)
    cases = {
        "root-owned /data": (["-v", f"{data}:/data"], "DATA_DIR: /data is not writable by uid 1000"),
        "unreadable SSH key": (["-v", f"{key}:/run/secrets/spark2_ssh_key:ro",
                                "-v", f"{key}:/run/secrets/spark2_known_hosts:ro",
                                "-e", "SPARK2_HOST=spark2.lan"],
                               "SSH_KEY_PATH: /run/secrets/spark2_ssh_key is not readable by uid 1000"),
    }
    for name, (args, words) in cases.items():
        result = subprocess.run(["docker", "run", "--rm", "--network", "none", *args, CONTROL],
                                env=daemon.env, capture_output=True, text=True, timeout=120)
        said = result.stdout + result.stderr
        assert result.returncode == 2 and words in said and "Traceback" not in said, said
        line = next(line for line in said.splitlines() if words in line)
        print(f"image-smoke: {name}: exit 2, {line!r}", flush=True)


def without_a_spark_env(port: int) -> str:
    """.env.example with its "without a Spark" lines switched on and SPARK2_HOST off."""
    lines, switch = [], False
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith("SPARK2_HOST="):
            line = f"# {line}"
        if line.startswith("# --- Without a Spark"):
            switch = True
        elif switch and line.startswith("# ") and "=" in line.split()[1]:
            line = line[2:]
        lines.append(line)
    return "\n".join([*lines, f"SPARK_CONTROL_PORT=127.0.0.1:{port}",
                      f"SPARK_CONTROL_TOKEN={TOKEN}", ""])


def compose(daemon: Dockerd, work: Path, conversation, long_wav: Path,  # type: ignore[no-untyped-def]
            port: int) -> None:
    command = timed("Compose v2", lambda: compose_command(work))
    print(f"image-smoke: compose: {' '.join(command)}", flush=True)
    project = work / "compose"
    project.mkdir(exist_ok=True)
    shutil.copy(REPO / "docker-compose.yml", project / "docker-compose.yml")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, "-p", "smoke", *args], cwd=project, env=daemon.env,
                              check=True, capture_output=True, text=True, timeout=600)

    run("config", "--quiet")  # no .env yet: the file must still be valid
    (project / ".env").write_text(without_a_spark_env(port))
    try:
        run("up", "-d", "--no-build")
        timed("compose services healthy",
              lambda: daemon.wait_healthy("smoke-spark-control-1", "smoke-speech-1"))
        with api(port) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            services = client.get("/api/services").json()
            assert [(s["name"], s["state"]) for s in services["services"]] == [
                ("parakeet-asr", "healthy")], services
            check_transcript(transcribe(client, conversation.wav), conversation)
            print("image-smoke: compose without a Spark: ready, parakeet-asr healthy, "
                  "transcribed", flush=True)
            stop_during_a_transcription(lambda: run("stop", "speech"), client, long_wav,
                                        lambda: daemon.cpu_percent("smoke-speech-1") > 50)
        code = daemon.run("inspect", "--format", "{{.State.ExitCode}}", "smoke-speech-1")
        assert code.stdout.strip() == "0", code.stdout
        print("image-smoke: the stopped speech server exited 0", flush=True)
    finally:
        run("down", "-v", "--timeout", "20")


def against_the_simulated_spark(daemon: Dockerd, work: Path) -> None:
    """The control image, host network, pointed at the simulated Spark 2 over SSH."""
    sim = SimSpark2.up()
    try:
        env = sim.env()
        keys = work / "keys"
        keys.mkdir()
        for name, source in (("key", env["SSH_KEY_PATH"]), ("known_hosts", env["SSH_KNOWN_HOSTS"])):
            shutil.copy(source, keys / name)
            (keys / name).chmod(0o600)
            shutil.chown(keys / name, 1000, 1000)  # the image's user
        port = free_ports(1)[0]
        passed = [f"{k}={env[k]}" for k in ("SPARK2_HOST", "SPARK2_USER", "SPARK2_SSH_PORT",
                                             "DOCKER_CMD", "PARAKEET_URL", "MAGPIE_URL",
                                             "PARAKEET_APP_DIR")]
        daemon.run("run", "-d", "--name", "control-spark", "--network", "host",
                   "-v", f"{keys / 'key'}:/run/secrets/spark2_ssh_key:ro",
                   "-v", f"{keys / 'known_hosts'}:/run/secrets/spark2_known_hosts:ro",
                   *[a for item in passed for a in ("-e", item)],
                   "-e", f"BIND_PORT={port}", "-e", "BIND_HOST=127.0.0.1",
                   "-e", f"SPARK_CONTROL_TOKEN={TOKEN}", CONTROL)
        daemon.wait_healthy("control-spark", timeout=120)
        with api(port) as client:
            def listed() -> dict | None:
                body = client.get("/api/services").json()
                states = {s["name"]: s["state"] for s in body["services"]}
                return body if states == {"parakeet-asr": "healthy",
                                          "magpie-tts": "healthy"} else None
            timed("services healthy over SSH", lambda: _wait(listed, 120, "both services"))
            models = client.get("/api/speech-models").json()
            assert models["status"] == "in_sync", models
        print(f"image-smoke: against the simulated Spark 2: services healthy, "
              f"{models['detail']}", flush=True)
    finally:
        daemon.run("rm", "-f", "control-spark", check=False)
        sim.down()


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="image-smoke-", dir="/tmp"))
    daemon = Dockerd(work)
    try:
        conversation = make_conversation(work / "audio", speakers=2, seconds=20, seed=3)
        long_wav = make_conversation(work / "long", speakers=2, seconds=180, seed=4).wav
        daemon.start()
        build(daemon, work)
        run_pair(daemon, conversation, free_ports(1)[0])
        refusals(daemon, work)
        compose(daemon, work, conversation, long_wav, free_ports(1)[0])
        against_the_simulated_spark(daemon, work)
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"image-smoke: passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
