"""A simulated Spark 2 on this machine: a private Docker Engine, an OpenSSH server
on loopback with generated keys, and the `parakeet-asr` and `magpie-tts` containers.

Used by the test fixtures and by `scripts/sim-spark2 up|down`. Every daemon is
started detached and stopped by the pid recorded in `state.json`, never by name.
`parakeet-asr` runs the project's own speech server from image/parakeet_patches,
copied into the container's writable layer at the app dir (as on the real Spark);
`magpie-tts` runs a small stand-in for NVIDIA's TTS container (sim/tts_standin.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.remote.docker import tar_of

REPO = Path(__file__).resolve().parent.parent
PATCHES = REPO / "image" / "parakeet_patches"
TTS_STANDIN = Path(__file__).resolve().parent / "tts_standin.py"
NVIDIA_SMI_STANDIN = Path(__file__).resolve().parent / "nvidia_smi_standin.sh"
GB10_CSV = "NVIDIA GB10, 3, [N/A], [N/A], 41, 11.52\n"  # as the GB10 prints it: no GPU memory
APP_DIR = "/opt/parakeet/app"
TTS_DIR = "/opt/magpie/app"
IMAGE = "simspark-root:latest"
BASE_IMAGE = "spark-control-base:bookworm"
# Where `up` records each simulation it starts, so `down` from any shell finds them
# (in the checkout, not $TMPDIR: another shell may have another TMPDIR).
RECORD = REPO / ".sim-spark2"


@dataclass
class SimState:
    root: str
    ssh_port: int
    parakeet_port: int
    magpie_port: int
    tts: bool = True  # runs magpie-tts
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def sock(self) -> str:
        return f"{self.root}/docker.sock"


class SimSpark2:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.root = Path(state.root)

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def up(cls, speech: bool = True, tts: bool = True) -> "SimSpark2":
        """speech=False: a Spark without parakeet-asr, as before the speech server is
        installed (magpie-tts only); tts=False: no magpie-tts (a speech host of a pool
        beyond the first)."""
        root = Path(tempfile.mkdtemp(prefix="simspark-", dir="/tmp"))  # short: socket paths
        state = SimState(str(root), *free_ports(3), tts=tts)
        sim = cls(state)
        try:
            sim.install_gpu_standin()
            sim.start_dockerd()
            sim.start_sshd()
            sim.build_image()
            sim.create_containers(speech=speech)
            sim.wait_healthy(speech=speech)
        except BaseException:
            sim.down()
            raise
        return sim

    @classmethod
    def attach(cls, root: str | Path) -> "SimSpark2":
        return cls(SimState(**json.loads((Path(root) / "state.json").read_text())))

    def down(self) -> None:
        if self.state.pids.get("dockerd") and _alive(self.state.pids["dockerd"]):
            self.docker("rm", "-f", "parakeet-asr", "magpie-tts", "parakeet-asr-next",
                        check=False)
        self.stop_sshd()
        self._kill("dockerd", timeout=20)
        _unmount_under(self.root)
        subprocess.run(["rm", "-rf", str(self.root)], check=False)
        forget(self.root)

    def save(self) -> None:
        (self.root / "state.json").write_text(json.dumps(asdict(self.state)))

    # -- Docker Engine -------------------------------------------------------

    def start_dockerd(self) -> None:
        self._spawn("dockerd", dockerd_argv(self.root, self.state.sock))
        _wait(lambda: self.docker("info", check=False).returncode == 0, 60, "dockerd")

    def docker(self, *args: str, check: bool = True, input: bytes | None = None
               ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", "-H", f"unix://{self.state.sock}", *args],
                              input=input, capture_output=True, check=check)

    def build_image(self) -> None:
        """An empty root filesystem: the machine's own Python comes in read-only binds."""
        empty = self.root / "rootfs"
        for sub in ("tmp", "opt", "root"):
            (empty / sub).mkdir(parents=True, exist_ok=True)
        (empty / "tmp").chmod(0o1777)
        tar = subprocess.run(["tar", "-C", str(empty), "-c", "."], capture_output=True,
                             check=True).stdout
        self.docker("import", "-", IMAGE, input=tar)

    def create_containers(self, speech: bool = True, env: dict[str, str] | None = None,
                          cpuset: str | None = None) -> None:
        # The overlay, plus the CPU engine's speaker-encoder weights: part of this
        # simulated image (the real one runs NeMo), not of what spark-control deploys.
        files = [*_patch_files(), PATCHES / "ge2e_weights.npz", PATCHES / "campplus.onnx"]
        if speech:
            self.create_container("parakeet-asr", self.state.parakeet_port, APP_DIR,
                                  {f"{APP_DIR}/{p.name}": p.read_bytes() for p in files},
                                  env=env, cpuset=cpuset)
        if self.state.tts:
            self.create_container("magpie-tts", self.state.magpie_port, TTS_DIR,
                                  {f"{TTS_DIR}/main.py": TTS_STANDIN.read_bytes()})

    def create_container(self, name: str, port: int, app_dir: str,
                         files: dict[str, bytes], engine: str = "cpu",
                         env: dict[str, str] | None = None, cpuset: str | None = None
                         ) -> None:
        self.docker("rm", "-f", name, check=False)
        # A removed container's server must be gone before the new one's health counts.
        _wait(lambda: not _port_open(port), 15, f"port {port} of the old {name} to close")
        python = sys.executable
        command = [python, "-m", "uvicorn", "main:app", "--app-dir", app_dir,
                   "--host", "127.0.0.1", "--port", str(port)]
        self.docker("create", "--name", name, "--network", "host", *_python_binds(),
                    "-e", f"PATH={Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
                    "-e", "PYTHONDONTWRITEBYTECODE=1", "-e", "HOME=/root",
                    "-e", f"ENGINE={engine}",
                    *[arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")],
                    *(["--cpuset-cpus", cpuset] if cpuset else []), IMAGE, *command)
        self.docker("cp", "-", f"{name}:/", input=tar_of(files))
        self.docker("start", name)

    def reset_containers(self, env: dict[str, str] | None = None,
                         cpuset: str | None = None) -> None:
        """Fresh containers (no memory cap, default files), both healthy; `env` is
        given to the speech server (e.g. CPU_SPEAKER_MODEL), `cpuset` pins it to
        those CPUs from its start (docker --cpuset-cpus; it sizes its threads by it).

        Waits first for docker commands that earlier clients left running (an SSH
        client that disconnects does not stop them): a late `docker update` must not
        land on the new containers."""
        _wait(lambda: not self._docker_clients(), 30, "earlier docker commands to end")
        self.create_containers(env=env, cpuset=cpuset)
        self.wait_healthy()

    def _docker_clients(self) -> list[int]:
        """Pids of docker CLI processes talking to this simulation's daemon."""
        sock = self.state.sock.encode()
        return [pid for pid, argv in processes()
                if argv and argv[0].endswith(b"docker") and sock in b" ".join(argv)]

    def wait_healthy(self, timeout: float = 60, speech: bool = True) -> None:
        """Both servers answer /health with status ok (the speech models loaded)."""
        ports = [self.state.parakeet_port] if speech else []
        ports += [self.state.magpie_port] if self.state.tts else []
        for port in ports:
            _wait(lambda p=port: _health_ok(f"http://127.0.0.1:{p}/health"), timeout,
                  f"health on port {port}")

    # -- OpenSSH server ----------------------------------------------------------

    def start_sshd(self) -> None:
        r = self.root
        keys = r / "keys"
        if not (keys / "host_ed25519").exists():
            self._make_keys(keys)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        config = r / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.state.ssh_port}", "ListenAddress 127.0.0.1",
            f"HostKey {keys}/host_ed25519", f"AuthorizedKeysFile {keys}/authorized_keys",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            f"PidFile {r}/sshd.pid", "MaxSessions 20", "",
        ]))
        self._spawn("sshd", ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", f"{r}/sshd.log"])
        _wait(lambda: _port_open(self.state.ssh_port), 15, "sshd")

    def stop_sshd(self) -> None:
        """Stop sshd and the sessions it forked, as a powered-off host would."""
        pid = self.state.pids.get("sshd")
        if pid:
            # Every sshd below it: a session's own sshd (privilege separation's child of
            # the per-connection monitor) would otherwise keep its connection serving.
            # Not the commands they ran: killed mid-way, the machine's login scripts can
            # leave locks behind (pyenv's rehash lock made every later SSH command wait
            # 60 s); cut off, they end by themselves.
            for child in _descendants(pid):
                if _comm(child) == "sshd":
                    _signal(child, signal.SIGKILL)
        self._kill("sshd")

    def _make_keys(self, keys: Path) -> None:
        keys.mkdir(parents=True)
        for name in ("host_ed25519", "client_ed25519", "other_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                            "-f", str(keys / name)], check=True)
        (keys / "authorized_keys").write_text((keys / "client_ed25519.pub").read_text())
        host_key = (keys / "host_ed25519.pub").read_text().split()[:2]
        other_key = (keys / "other_ed25519.pub").read_text().split()[:2]
        entry = f"[127.0.0.1]:{self.state.ssh_port}"
        (keys / "known_hosts").write_text(f"{entry} {' '.join(host_key)}\n")
        # The same host with a different key: what a man-in-the-middle would present.
        (keys / "wrong_known_hosts").write_text(f"{entry} {' '.join(other_key)}\n")

    # -- what spark-control needs --------------------------------------------

    def install_gpu_standin(self) -> None:
        smi = self.root / "gpu" / "nvidia-smi"
        smi.parent.mkdir(exist_ok=True)
        smi.write_bytes(NVIDIA_SMI_STANDIN.read_bytes())
        smi.chmod(0o755)
        self.set_gpu(GB10_CSV)

    def set_gpu(self, csv: str | None) -> None:
        """What the stand-in nvidia-smi prints next; None: it fails as with no driver."""
        target = self.root / "gpu" / "gpu.csv"
        if csv is None:
            target.unlink(missing_ok=True)
        else:
            target.write_text(csv)

    def env(self) -> dict[str, str]:
        keys = self.root / "keys"
        return {
            "SPARK2_HOST": "127.0.0.1",
            "SPARK2_USER": "root",
            "SPARK2_SSH_PORT": str(self.state.ssh_port),
            "SSH_KEY_PATH": str(keys / "client_ed25519"),
            "SSH_KNOWN_HOSTS": str(keys / "known_hosts"),
            "DOCKER_CMD": shlex.join(["docker", "-H", f"unix://{self.state.sock}"]),
            "PARAKEET_URL": f"http://127.0.0.1:{self.state.parakeet_port}",
            "MAGPIE_URL": f"http://127.0.0.1:{self.state.magpie_port}",
            "PARAKEET_APP_DIR": APP_DIR,
            "NVIDIA_SMI_CMD": str(self.root / "gpu" / "nvidia-smi"),
            "SIM_SPARK2_DIR": str(self.root),
        }

    def host_entry(self, name: str) -> dict[str, object]:
        """This simulation as one HOSTS entry of a pool (config.HostSpec)."""
        keys = self.root / "keys"
        return {"name": name, "ssh_host": "127.0.0.1", "ssh_port": self.state.ssh_port,
                "user": "root", "ssh_key_path": str(keys / "client_ed25519"),
                "ssh_known_hosts": str(keys / "known_hosts"),
                "docker_cmd": shlex.join(["docker", "-H", f"unix://{self.state.sock}"]),
                "nvidia_smi_cmd": str(self.root / "gpu" / "nvidia-smi"),
                "parakeet_url": f"http://127.0.0.1:{self.state.parakeet_port}",
                "parakeet_app_dir": APP_DIR}

    def import_base(self, tag: str = BASE_IMAGE) -> str:
        """A Debian base with python3 and pip (sim.images.cached_base) in this Docker
        Engine: what the speech server's Dockerfile builds on here, in place of the NGC
        PyTorch image a real Spark holds."""
        from sim.images import cached_base  # mmdebstrap: only where a build is tested

        self.docker("import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                    str(cached_base()), tag)
        return tag

    def install_env(self, spare_port: int) -> dict[str, str]:
        """Settings for the install manager here: the CPU engine on the imported base,
        host networking (this dockerd has no default bridge), no GPU."""
        return {"SPEECH_SERVER_BASE": BASE_IMAGE, "SPEECH_SERVER_ENGINE": "cpu",
                "SPEECH_SERVER_NETWORK": "host", "SPEECH_SERVER_GPUS": "none",
                "SPEECH_SERVER_SPARE_PORT": str(spare_port)}

    def container_pid(self, name: str) -> int:
        out = self.docker("inspect", "--format", "{{.State.Pid}}", name).stdout
        return int(out.strip())

    # -- process bookkeeping -------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.out", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.state.pids[name] = proc.pid
        self.save()

    def _kill(self, name: str, timeout: float = 10) -> None:
        pid = self.state.pids.pop(name, None)
        if pid is None:
            return
        _signal(pid, signal.SIGTERM)
        try:
            _wait(lambda: not _alive(pid), timeout, f"{name} to stop")
        except TimeoutError:
            _signal(pid, signal.SIGKILL)
        _reap(pid)
        self.save()


def _patch_files() -> list[Path]:
    """The overlay as its manifest lists it (what spark-control deploys and checks)."""
    import tomllib

    table = tomllib.loads((PATCHES / "manifest.toml").read_text())["files"]
    return [PATCHES / name for name in table]


def _python_binds() -> list[str]:
    """Read-only binds that give the container this machine's Python and packages."""
    kept: list[str] = []
    for path in ["/usr", "/lib", "/lib64", "/bin", "/etc", sys.base_prefix, sys.prefix]:
        if Path(path).exists() and not any(Path(path).is_relative_to(k) for k in kept):
            kept.append(path)
    return [arg for path in kept for arg in ("-v", f"{path}:{path}:ro")]


def dockerd_argv(root: Path, sock: str | Path) -> list[str]:
    """A private Docker Engine under `root`: no default bridge or iptables here."""
    return ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
            f"--data-root={root}/data", f"--exec-root={root}/exec",
            f"--pidfile={root}/dockerd.pid", "-H", f"unix://{sock}"]


def _unmount_under(root: Path) -> None:
    """dockerd can leave mounts (netns, overlays) in its dirs; rm cannot pass them."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process of this machine (the simulated Spark's host)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            yield int(cmdline.parent.name), cmdline.read_bytes().split(b"\0")
        except OSError:
            continue


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _health_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return json.load(response).get("status") == "ok"
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def recorded() -> list[Path]:
    """Simulations `up` started that still have their state (oldest first)."""
    lines = RECORD.read_text().splitlines() if RECORD.exists() else []
    return [Path(line) for line in lines if line and (Path(line) / "state.json").exists()]


def remember(root: Path) -> None:
    RECORD.write_text("".join(f"{p}\n" for p in [*recorded(), root]))


def forget(root: Path) -> None:
    left = [p for p in recorded() if p != root]
    if left:
        RECORD.write_text("".join(f"{p}\n" for p in left))
    elif RECORD.exists():
        RECORD.unlink()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command == "up":
        bare = "--no-speech" in argv[1:]  # to try the install manager
        sim = SimSpark2.up(speech=not bare)
        remember(sim.root)  # lets a plain `down`, from any shell, find it
        env = sim.env()
        if bare:
            sim.import_base()
            env.update(sim.install_env(free_ports(1)[0]))
        more = [SimSpark2.up(tts=False) for _ in range(_hosts(argv[1:]) - 1)]
        for other in more:
            remember(other.root)
        if more:
            env["HOSTS"] = json.dumps([o.host_entry(_name(i)) for i, o in enumerate(more)])
            env["SIM_SPARK2_DIRS"] = " ".join(str(s.root) for s in (sim, *more))
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if command == "down":
        return _down(argv[1:])
    print("usage: sim-spark2 up [--no-speech] [--hosts N] | down [DIR]\n"
          "  eval \"$(scripts/sim-spark2 up)\"; spark-control\n"
          "  --no-speech: no parakeet-asr, a Debian base image and the install manager's "
          "settings (install it from the dashboard)\n"
          "  --hosts N: N simulated hosts as one pool (SPARK2_HOST and HOSTS)",
          file=sys.stderr)
    return 2


def _hosts(args: list[str]) -> int:
    """--hosts N (default 1)."""
    if "--hosts" not in args:
        return 1
    index = args.index("--hosts")
    try:
        count = int(args[index + 1])
    except (IndexError, ValueError):
        raise SystemExit("sim-spark2: --hosts takes a number, e.g. --hosts 2") from None
    if not 1 <= count <= 8:
        raise SystemExit("sim-spark2: --hosts takes 1 to 8")
    return count


def _name(index: int) -> str:
    """The pool names of the hosts after the first (spark2): spark1, then spark3..."""
    return "spark1" if index == 0 else f"spark{index + 2}"


def _down(args: list[str]) -> int:
    """`down DIR`, or the shell's SIM_SPARK2_DIRS (or SIM_SPARK2_DIR), or every
    simulation `up` recorded."""
    named = (args[:1] or os.environ.get("SIM_SPARK2_DIRS", "").split()
             or [os.environ.get("SIM_SPARK2_DIR", "")])
    roots = [Path(n) for n in named if n] or recorded()
    roots = [r for r in roots if (r / "state.json").exists()]
    if not roots:
        print("sim-spark2: nothing to stop (no DIR given, no SIM_SPARK2_DIR, and no "
              f"simulation recorded in {RECORD})", file=sys.stderr)
        return 1
    for root in roots:
        SimSpark2.attach(str(root)).down()
        print(f"sim-spark2: stopped and removed {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
