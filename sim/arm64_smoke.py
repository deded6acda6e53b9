"""Both images built for linux/arm64 (as on the Sparks) and started, under emulation.

    scripts/arm64-smoke                 both images (about 12 minutes on 2 cores, mostly qemu)
    scripts/arm64-smoke --speech-only   the speech server's only (CI: it is the image the
                                        Sparks run; spark-control may run on any machine)

qemu with a binfmt_misc registration (flag F: the interpreter is opened at registration,
so it works inside containers) runs arm64 binaries on this x86_64 machine. Debian 13's
qemu-user (10.0), unpacked into .cache/qemu: Debian 12's qemu-user-static (7.2)
crashes in `import onnxruntime` (1.32, aarch64: "uncaught target signal 11") and the
server never loads. The registration is put back as it was at the end.
mmdebstrap makes an arm64 Debian base with python3 and pip; a private dockerd imports it
as linux/arm64; image/Dockerfile and image/Dockerfile.speech (ENGINE=cpu) build on it
unchanged. Then, with figures printed as it goes:
1. both images hold aarch64 code: `uname -m` inside each container, and the ELF machine
   of its Python and of a compiled wheel pip chose (onnxruntime, pydantic-core). Debian
   12's dockerd (20.10) records the legacy builder's images as linux/amd64 whatever
   their base (its `import --platform` and `build --platform` do not set it): on a Spark
   the build is native and the metadata right;
2. the speech server answers /health with its models loaded, and a 1 s transcription;
3. spark-control answers /livez, and /readyz once pointed at that speech server.
The emulated CPU is 20-30 times slower than the machine: a speech server's own bound for a
hung model call (parakeet_patches/work.py) is measured against it, not assumed.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sim.images import CACHE, Dockerd, _download_from_next_release, cached_base
from sim.spark2 import _wait, free_ports
from app.registry.probes import silence_wav

REPO = Path(__file__).resolve().parents[1]
BASE = "spark-control-base:bookworm-arm64"
CONTROL, SPEECH = "spark-control:arm64", "spark-control-speech:arm64"
TOKEN = "arm64-smoke-token-0123456789"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # Debian 12's, if installed
QEMU = CACHE / "qemu"
# The e_machine of the interpreter and of the first .so of a package: 183 is AArch64.
ELF_MACHINES = """import importlib.util, pathlib, struct, sys
def machine(path):
    head = pathlib.Path(path).read_bytes()[:20]
    return {183: "aarch64", 62: "x86_64"}.get(struct.unpack("<H", head[18:20])[0], "other")
spec = importlib.util.find_spec(sys.argv[1])
lib = next(pathlib.Path(spec.origin).parent.rglob("*.so"))
print(machine(sys.executable), machine(lib))"""


def timed(what: str, work):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = work()
    print(f"arm64-smoke: {what}: {time.monotonic() - started:.1f} s", flush=True)
    return result


def register_qemu() -> None:
    """binfmt_misc mounted and qemu-aarch64 registered with Debian 13's qemu."""
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    root = QEMU / "root"
    if not (root / "usr/bin/qemu-aarch64").exists():
        deb = _download_from_next_release("qemu-user", QEMU / "apt")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    line = (root / "usr/share/qemu/binfmt.d/qemu-aarch64.conf").read_text().strip()
    _unregister()
    (BINFMT / "register").write_text(line.replace(":/usr/libexec/", f":{root}/usr/libexec/"))
    status = (BINFMT / "qemu-aarch64").read_text()
    assert "enabled" in status and str(root) in status, status
    version = subprocess.run([str(root / "usr/bin/qemu-aarch64"), "--version"],
                             capture_output=True, text=True).stdout.splitlines()[0]
    print(f"arm64-smoke: {version} registered for aarch64 binaries", flush=True)


def restore_qemu() -> None:
    """The machine's own registration again (Debian 12's package), or none."""
    _unregister()
    if QEMU_CONF.exists():
        (BINFMT / "register").write_text(QEMU_CONF.read_text().strip())


def _unregister() -> None:
    if (BINFMT / "qemu-aarch64").exists():
        (BINFMT / "qemu-aarch64").write_text("-1")


def build(daemon: Dockerd, control: bool = True) -> None:
    tarball = timed("arm64 Debian base (mmdebstrap under qemu, cached)",
                    lambda: cached_base(arch="arm64"))
    daemon.run("import", "--platform", "linux/arm64", "--change",
               "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt", str(tarball), BASE)
    images = [("image/Dockerfile.speech", SPEECH)]
    images += [("image/Dockerfile", CONTROL)] if control else []
    for dockerfile, tag in images:
        timed(f"docker build {dockerfile} for arm64", lambda d=dockerfile, t=tag: daemon.run(
            "build", "--network", "host", "--build-arg", f"BASE={BASE}", "-f", d, "-t", t,
            str(REPO), timeout=3000))
    sizes = daemon.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
    print("arm64-smoke: images:", ", ".join(sizes.split("\n")).strip(", "), flush=True)


def start(daemon: Dockerd, speech_port: int, control_port: int | None) -> None:
    daemon.run("run", "-d", "--name", "speech", "--network", "host",
               "-e", f"PORT={speech_port}", SPEECH)
    checks = [("speech", "onnxruntime")]
    if control_port is not None:
        daemon.run("run", "-d", "--name", "control", "--network", "host",
                   "-e", f"BIND_PORT={control_port}", "-e", "BIND_HOST=127.0.0.1",
                   "-e", f"PARAKEET_URL=http://127.0.0.1:{speech_port}",
                   "-e", f"SPARK_CONTROL_TOKEN={TOKEN}", CONTROL)
        checks.append(("control", "pydantic_core"))
    for name, module in checks:
        machine = daemon.run("exec", name, "uname", "-m").stdout.strip()
        elf = daemon.run("exec", name, "python", "-c", ELF_MACHINES, module).stdout.split()
        assert machine == "aarch64" and elf and set(elf) == {"aarch64"}, (name, machine, elf)
    print(f"arm64-smoke: uname -m and the ELF machine of python and of a compiled wheel in "
          f"{' and '.join(n for n, _ in checks)}: aarch64 (host: {platform.machine()})",
          flush=True)


def speech_ready(port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    timed("speech server /health: models loaded", lambda: _wait(
        lambda: _health(url) == "ok", 1200, "the arm64 speech server's models"))
    answer = timed("a 1 s transcription", lambda: httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": ("s.wav", silence_wav(1.0), "audio/wav")},
        data={"response_format": "json"}, timeout=600))
    assert answer.status_code == 200 and "text" in answer.json(), answer.text


def control_ready(port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    timed("spark-control /livez", lambda: _wait(lambda: _status(f"{url}/livez") == 200, 600,
                                                "spark-control's /livez"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    _wait(lambda: _status(f"{url}/readyz", headers) == 200, 120, "spark-control's /readyz")
    print("arm64-smoke: spark-control ready, pointed at the arm64 speech server", flush=True)


def _health(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/health", timeout=10).json().get("status")
    except (httpx.HTTPError, ValueError):
        return None


def _status(url: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        return httpx.get(url, headers=headers, timeout=10).status_code
    except httpx.HTTPError:
        return None


def main() -> int:
    started = time.monotonic()
    control = "--speech-only" not in sys.argv[1:]
    register_qemu()
    work = Path(tempfile.mkdtemp(prefix="arm64-smoke-", dir="/tmp"))
    daemon = Dockerd(work)
    try:
        daemon.start()
        build(daemon, control)
        speech_port, control_port = free_ports(2)
        start(daemon, speech_port, control_port if control else None)
        speech_ready(speech_port)
        if control:
            control_ready(control_port)
    except BaseException:
        for name in ("speech", "control") if control else ("speech",):
            logs = daemon.run("logs", "--tail", "30", name, check=False)
            print(logs.stdout, logs.stderr, flush=True)
        raise
    finally:
        daemon.stop()
        restore_qemu()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"arm64-smoke: passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
