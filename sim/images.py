"""Building and running the project's images on a machine with no registry.

- `make_base`: a Debian base made with mmdebstrap from the host's own apt configuration
  (no mirror is named here), with python3 and pip as `python`/`pip` (what the
  Dockerfiles expect of python:3.11-slim), the host's CA certificates (HTTPS from
  inside a build otherwise fails verification here) and the host's apt settings.
- `Dockerd`: a private Docker Engine (no default bridge, no iptables; user-defined
  networks and published ports work).
- `compose_command`: Compose v2, taken from Debian 13's docker-compose package when the
  machine has only Debian 12's Compose 1.29 (which rejects the file's create_host_path).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sim.spark2 import _alive, _reap, _signal, _unmount_under, _wait, dockerd_argv

BASE_PACKAGES = "python3,python3-pip,ca-certificates,passwd"  # passwd: useradd
TRIM = ["path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias"]


CACHE = Path(__file__).resolve().parents[1] / ".cache" / "images"


def cached_base(suite: str = "bookworm", arch: str | None = None) -> Path:
    """`make_base`'s tarball, made once per checkout and reused (image-smoke makes it,
    the speech-server install tests import it into the simulated Spark's dockerd).
    A day old at most: apt's indexes move on and a stale base fails its apt-get."""
    name = f"rootfs-{suite}-{arch or 'native'}.tar"
    tarball = CACHE / name
    if not tarball.exists() or time.time() - tarball.stat().st_mtime > 86400:
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as work:  # one base at a time each
            make_base(Path(work), suite, arch).replace(tarball)
    return tarball


def make_base(out: Path, suite: str = "bookworm", arch: str | None = None) -> Path:
    """A root filesystem tarball: Debian `suite` (minbase) with python3 and pip."""
    hooks = [
        'cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" '
        '2>/dev/null; chroot "$1" update-ca-certificates >/dev/null 2>&1',
        'for f in /etc/apt/apt.conf.d/*; do grep -q "Check-Valid-Until" "$f" && '
        'cp "$f" "$1/etc/apt/apt.conf.d/"; done; true',
        'ln -sf python3 "$1/usr/bin/python"; ln -sf pip3 "$1/usr/bin/pip"; '
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED; rm -rf "$1"/var/lib/apt/lists/*',
    ]
    tarball = out / "rootfs.tar"
    argv = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={BASE_PACKAGES}",
            *([f"--architectures={arch}"] if arch else []),
            *[f"--dpkgopt={opt}" for opt in TRIM],
            *[f"--customize-hook={hook}" for hook in hooks], suite, str(tarball)]
    subprocess.run(argv, check=True)
    return tarball


class Dockerd:
    """A private dockerd under `root`; `stop()` ends it and removes what it left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.pid: int | None = None

    def start(self) -> None:
        with open(self.root / "dockerd.log", "ab") as log:
            self.pid = subprocess.Popen(dockerd_argv(self.root, self.sock), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True).pid
        _wait(lambda: self.run("info", check=False).returncode == 0, 60, "dockerd")

    @property
    def env(self) -> dict[str, str]:
        # The legacy builder: the docker client here has no buildx.
        return {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_BUILDKIT": "0"}

    def run(self, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self.env, check=check,
                              capture_output=True, text=input is None, input=input,
                              timeout=timeout)

    def stop(self) -> None:
        if self.pid is not None and _alive(self.pid):
            containers = self.run("ps", "-aq", check=False).stdout.split()
            if containers:
                self.run("rm", "-f", *containers, check=False)
            _signal(self.pid, 15)
            try:
                _wait(lambda: not _alive(self.pid), 30, "dockerd to stop")
            except TimeoutError:
                _signal(self.pid, 9)
            _reap(self.pid)
        self.pid = None
        _unmount_under(self.root)

    def health(self, container: str) -> str:
        out = self.run("inspect", "--format", "{{.State.Health.Status}}", container,
                       check=False).stdout
        return out.strip()

    def cpu_percent(self, container: str) -> float:
        out = self.run("stats", "--no-stream", "--format", "{{.CPUPerc}}", container,
                       check=False).stdout.strip().rstrip("%")
        try:
            return float(out)
        except ValueError:
            return 0.0

    def wait_healthy(self, *containers: str, timeout: float = 300) -> float:
        """Seconds until every container's HEALTHCHECK says healthy."""
        started = time.monotonic()
        _wait(lambda: all(self.health(c) == "healthy" for c in containers), timeout,
              f"{', '.join(containers)} to be healthy")
        return time.monotonic() - started


# ---------------------------------------------------------------- Compose v2


def compose_command(work: Path) -> list[str]:
    """argv of a Compose v2: the machine's own if it has one, else Debian 13's package
    unpacked into `work` (nothing installed system-wide)."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and _compose_major(argv) == 2:
            return argv
    binary = work / "compose" / "usr/libexec/docker/cli-plugins/docker-compose"
    if not binary.exists():
        deb = _download_from_next_release("docker-compose", work / "apt")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "compose")], check=True)
    return [str(binary)]


def _compose_major(argv: list[str]) -> int | None:
    result = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True)
    match = re.match(r"v?(\d+)\.", result.stdout.strip())
    return int(match.group(1)) if result.returncode == 0 and match else None


def next_release_sources(text: str, suite: str = "bookworm", to: str = "trixie") -> str:
    """The host's deb822 sources for `suite` itself, renamed to `to` (mirrors kept;
    the security and updates stanzas are left out)."""
    found = []
    for stanza in text.split("\n\n"):
        suites = re.search(r"^Suites:(.*)$", stanza, re.M)
        if suites and suite in suites.group(1).split():
            found.append(re.sub(r"^Suites:.*$", f"Suites: {to}", stanza, flags=re.M))
    if not found:
        raise RuntimeError(f"no apt source for {suite} in /etc/apt/sources.list.d/*.sources")
    return "\n\n".join(found) + "\n"


def _download_from_next_release(package: str, folder: Path) -> Path:
    """`apt-get download` of `package` from Debian 13, with apt's own download path and
    a private package list: the host's apt state is left as it was."""
    sources = "\n\n".join(p.read_text() for p in sorted(Path("/etc/apt/sources.list.d")
                                                        .glob("*.sources")))
    parts = folder / "sources.list.d"
    (folder / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "next.sources").write_text(next_release_sources(sources))
    options = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={parts}",
               "-o", f"Dir::State::Lists={folder / 'lists'}",
               "-o", "APT::Sandbox::User=root", "-qq"]
    subprocess.run(["apt-get", *options, "update"], check=True)
    subprocess.run(["apt-get", *options, "download", package], check=True, cwd=folder)
    return next(folder.glob(f"{package}_*.deb"))
