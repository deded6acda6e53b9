"""Packaging: the Dockerfiles, .dockerignore, docker-compose.yml and .env.example.

No base image can be pulled here, so nothing is built: what can be checked without
Docker is checked. Every file a Dockerfile copies is in the build context; the
dependency layer comes before the code; the image's command, run with the image's
environment, serves the app and its HEALTHCHECK command sees it; the compose file
and the example settings agree with the images and with Settings.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MAIN, SPEECH = ROOT / "image" / "Dockerfile", ROOT / "image" / "Dockerfile.speech"
DOCKERFILES = [MAIN, SPEECH]
NOT_NEEDED = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache)(/|$)"
                        r"|\.py[co]$|\.egg-info(/|$)|^image/Dockerfile")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- reading a Dockerfile and .dockerignore --------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name} ends inside a continuation"
    return out


def words(args: str) -> list[str]:
    """Exec form (JSON) or shell-like form."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copies(path: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    out = []
    for ins in instructions(path):
        if ins.keyword in ("COPY", "ADD"):
            parts = words(ins.args)
            if any(p.startswith("--from") for p in parts):
                continue
            parts = [p for p in parts if not p.startswith("--")]
            out.append((parts[:-1], parts[-1]))
    return out


def image_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions(path):
        if ins.keyword == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(ins.args))
    return env


def build_args(path: Path) -> dict[str, str]:
    """Every ARG's default."""
    return dict(ins.args.split("=", 1) for ins in instructions(path)
                if ins.keyword == "ARG" and "=" in ins.args)


def resolved_env(path: Path) -> dict[str, str]:
    """The image's ENV with ARG defaults substituted (ENV ENGINE=${ENGINE})."""
    args = build_args(path)
    return {key: re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), value)
            for key, value in image_env(path).items()}


def speech_command() -> list[str]:
    """The speech image's command: `sh -c "exec uvicorn ..."`, its $VARs from the ENV."""
    cmd = exec_form(SPEECH, "CMD")
    assert cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exec ")
    env = resolved_env(SPEECH)
    text = re.sub(r"\$(\w+)", lambda m: env[m[1]], cmd[2][len("exec "):])
    return shlex.split(text)


def exec_form(path: Path, keyword: str) -> list[str]:
    [args] = [ins.args for ins in instructions(path) if ins.keyword == keyword][-1:]
    assert args.startswith("["), f"{keyword} should be in exec form (signals reach the app)"
    return json.loads(args)


def _pattern(text: str) -> re.Pattern[str]:
    """A .dockerignore pattern as moby's patternmatcher compiles it."""
    out, i = "", 0
    while i < len(text):
        if text.startswith("**", i):
            i += 3 if text.startswith("**/", i) else 2
            out += ".*" if i >= len(text) else "(.*/)?"
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(text[i], re.escape(text[i]))
        i += 1
    return re.compile(f"^{out}$")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            cleaned = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((keep, _pattern(cleaned)))
    return rules


def excluded(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for keep, pattern in rules:
        if any(pattern.match(c) for c in candidates):
            verdict = not keep
    return verdict


# -- the build context ------------------------------------------------------------------

def test_the_ignore_matcher_follows_dockers_rules():
    rules = [(False, _pattern("*")), (True, _pattern("image")),
             (False, _pattern("**/__pycache__")), (False, _pattern("image/*.egg-info"))]
    assert excluded("tests/unit/x.py", rules) and excluded(".git/HEAD", rules)
    assert not excluded("image/app/cli.py", rules)
    assert excluded("image/app/__pycache__/cli.cpython-311.pyc", rules)
    assert excluded("image/spark_control.egg-info/PKG-INFO", rules)
    assert not excluded("image/x.egg-info.txt", rules)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_file_a_dockerfile_copies_is_in_the_build_context(dockerfile):
    rules = ignore_rules()
    for sources, _ in copies(dockerfile):
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{dockerfile.name}: COPY {source}: no such file"
            assert not excluded(source.rstrip("/"), rules), f"{source} is in .dockerignore"
            files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
            left_out = [str(p.relative_to(ROOT)) for p in files
                        if excluded(str(p.relative_to(ROOT)), rules)]
            assert all(NOT_NEEDED.search(f) for f in left_out), left_out


def test_the_context_leaves_out_everything_no_image_needs():
    rules = ignore_rules()
    for path in ("tests/unit/test_packaging.py", "bench", "sim/spark2.py", "testaudio",
                 ".git/HEAD", "data/jobs.sqlite3", ".env", ".pytest_cache", ".hypothesis",
                 "scripts/run", "image/spark_control.egg-info/PKG-INFO",
                 "image/app/__pycache__/cli.cpython-311.pyc", "image/Dockerfile"):
        assert excluded(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "README.md", "image/app/cli.py", "image/static/index.html",
                 "image/parakeet_patches/manifest.toml"):
        assert not excluded(path, rules), path


def test_the_speech_servers_build_context_is_in_the_spark_control_image():
    """The install manager streams it from spark-control's own files (in its image too)."""
    from app.speech_server.context import load_context
    rules = ignore_rules()
    context = load_context()
    assert "image/Dockerfile.speech" in context.files
    for path in context.files:
        assert not excluded(path, rules), f"{path} is left out of the spark-control image"
    copied = {src.rstrip("/") for srcs, _ in copies(MAIN) for src in srcs}
    assert {"constraints", "pyproject.toml", "image"} <= copied


@pytest.mark.parametrize(("dockerfile", "first"), [
    (MAIN, [["pyproject.toml"], ["constraints/"]]),
    (SPEECH, [["pyproject.toml", "constraints/main.txt", "constraints/nemo.txt"]])],
    ids=["Dockerfile", "Dockerfile.speech"])
def test_dependencies_are_installed_before_the_code_is_copied(dockerfile, first):
    """A code (or README) change then reuses the dependency layer."""
    steps = instructions(dockerfile)
    install = next(i for i, s in enumerate(steps)
                   if s.keyword == "RUN" and "pip install -r" in s.args)
    before = [words(s.args)[:-1] for s in steps[:install] if s.keyword == "COPY"]
    assert before == first
    after = [src for s in steps[install:] if s.keyword == "COPY" for src in words(s.args)[:-1]]
    assert any(src.startswith("image/") for src in after)


@pytest.mark.parametrize(("dockerfile", "groups", "engine"), [
    (MAIN, ["dependencies"], ""), (SPEECH, ["speech"], "cpu"), (SPEECH, ["spark"], "nemo")],
    ids=["Dockerfile", "Dockerfile.speech-cpu", "Dockerfile.speech-nemo"])
def test_the_dependency_step_lists_pyprojects_requirements(dockerfile, groups, engine,
                                                           tmp_path):
    """Run the Dockerfile's own requirements one-liner against pyproject.toml."""
    run = next(s.args for s in instructions(dockerfile) if "> /tmp/requirements.txt" in s.args)
    command = run.split(" && ")[0].replace("/tmp/requirements.txt", str(tmp_path / "req"))
    subprocess.run(["sh", "-c", command], cwd=ROOT, check=True,
                   env={**python_on_path(tmp_path), "ENGINE": engine})
    project = PYPROJECT["project"]
    wanted = [r for g in groups
              for r in (project[g] if g == "dependencies" else project["optional-dependencies"][g])]
    assert (tmp_path / "req").read_text().splitlines() == wanted


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_images_install_at_the_locked_versions(dockerfile):
    installs = [s.args for s in instructions(dockerfile) if "pip install -r" in s.args]
    assert installs and all(re.search(r"-c (constraints/)?main\.txt", args) for args in installs)
    def normal(name: str) -> str:  # PEP 503
        return re.sub(r"[-_.]+", "-", name).lower()

    locked = {normal(line.split("==")[0]) for line in
              (ROOT / "constraints/main.txt").read_text().splitlines() if "==" in line}
    project = PYPROJECT["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["speech"]:
        name = normal(re.split(r"[<>=\[ ]", requirement)[0])
        assert name in locked, f"{name} is not in constraints/main.txt"
    nemo_lock = {normal(line.split("==")[0]) for line in
                 (ROOT / "constraints/nemo.txt").read_text().splitlines() if "==" in line}
    for requirement in project["optional-dependencies"]["spark"]:
        name = normal(re.split(r"[<>=\[ ]", requirement)[0])
        assert name in nemo_lock, f"{name} is not in constraints/nemo.txt"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_as_a_user_not_root(dockerfile):
    steps = instructions(dockerfile)
    users = [s.args for s in steps if s.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_user = max(i for i, s in enumerate(steps) if s.keyword == "USER")
    assert last_user < max(i for i, s in enumerate(steps) if s.keyword == "CMD")


def test_the_speech_image_runs_the_speech_servers_app():
    cmd = speech_command()
    assert cmd[:2] == ["uvicorn", "main:app"] and "uvicorn" in " ".join(
        PYPROJECT["project"]["dependencies"])
    app_dir = cmd[cmd.index("--app-dir") + 1]
    [workdir] = [s.args for s in instructions(SPEECH) if s.keyword == "WORKDIR"]
    args = build_args(SPEECH)
    [dest] = [posixpath.join(workdir, d.replace("${APP_DIR}", args["APP_DIR"]))
              for srcs, d in copies(SPEECH) if srcs == ["image/parakeet_patches/"]]
    assert posixpath.normpath(dest) == app_dir
    tree = ast.parse((ROOT / "image/parakeet_patches/main.py").read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert "app" in assigned and resolved_env(SPEECH)["ENGINE"] == "cpu"
    assert "/health" in healthcheck(SPEECH)


# -- the image's command and healthcheck, run here ------------------------------------

def healthcheck(dockerfile: Path) -> str:
    [args] = [s.args for s in instructions(dockerfile) if s.keyword == "HEALTHCHECK"]
    return args.split(" CMD ", 1)[1]


def python_on_path(tmp_path: Path) -> dict[str, str]:
    """The environment with `python` meaning this interpreter, as in the image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_command_is_the_installed_console_script():
    cmd = exec_form(MAIN, "CMD")
    assert PYPROJECT["project"]["scripts"][cmd[0]] == "app.cli:main"
    [script] = entry_points(group="console_scripts", name=cmd[0])
    assert script.value == "app.cli:main"


LAUNCH = ("import sys; from importlib.metadata import entry_points; "
          "[s] = entry_points(group='console_scripts', name=sys.argv[1]); "
          "sys.argv = sys.argv[1:]; sys.exit(s.load()())")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(tmp_path: Path, port: int) -> dict[str, str]:
    """The image's ENV, on this machine: no Spark, files in tmp, loopback on a free port."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in python_on_path(tmp_path).items() if k not in settings}
    env.update(image_env(MAIN))
    env.update(DATA_DIR=str(tmp_path / "data"), BIND_HOST="127.0.0.1", BIND_PORT=str(port),
               SSH_KEY_PATH=str(tmp_path / "no-key"), SSH_KNOWN_HOSTS=str(tmp_path / "no-kh"))
    return env


def wait_live(proc: subprocess.Popen[bytes], url: str, log: Path,
              timeout: float = 40) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered; log: {log.read_text()[-2000:]}")


def test_the_images_command_serves_the_app_and_its_healthcheck_sees_it(tmp_path):
    cmd, port, log = exec_form(MAIN, "CMD"), free_port(), tmp_path / "log"
    env, check = app_env(tmp_path, port), ["sh", "-c", healthcheck(MAIN)]
    assert "/livez" in check[2]
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, *cmd], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_live(proc, f"http://127.0.0.1:{port}/livez", log).status_code == 200
        assert subprocess.run(check, env=env, timeout=10).returncode == 0
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Application shutdown complete" in log.read_text()  # uvicorn then re-raises it
    gone = subprocess.run(check, env=env, timeout=10, capture_output=True)
    assert gone.returncode != 0


# -- docker-compose.yml and .env.example ------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    """Every KEY=value of .env.example, commented out or not (the last one wins)."""
    found = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(),
                       re.MULTILINE)
    return dict(found)


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service's volumes by target, short syntax turned into the long one."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            volume = {"source": source, "target": target, "read_only": mode == ["ro"]}
        out[volume["target"]] = volume
    return out


def test_compose_builds_each_service_from_a_dockerfile_here():
    services = compose()["services"]
    assert set(services) >= {"spark-control", "speech"}
    for name, service in services.items():
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        assert (ROOT / build["context"]).resolve() == ROOT  # what .dockerignore is for
        assert service["restart"] in ("always", "unless-stopped"), name
        # longer than the server's own graceful-shutdown bound: no request cut at 10 s
        assert service["stop_grace_period"] == "2m", name
    command = speech_command()
    assert int(command[command.index("--timeout-graceful-shutdown") + 1]) < 120
    from app.cli import SHUTDOWN_GRACE_S
    assert SHUTDOWN_GRACE_S < 120


def test_spark_control_keeps_its_data_on_a_volume_and_mounts_the_key_read_only():
    data = compose()
    service = data["services"]["spark-control"]
    env = {**image_env(MAIN), **service["environment"]}
    volumes = mounts(service)
    assert volumes[env["DATA_DIR"]]["source"] in data["volumes"]
    for key in ("SSH_KEY_PATH", "SSH_KNOWN_HOSTS"):
        mount = volumes[env[key]]
        assert mount["read_only"] is True and mount["type"] == "bind", key
        assert mount["bind"]["create_host_path"] is False, key  # never an empty directory
    # .env is optional: `docker compose up` works before anyone has written one
    assert service["env_file"] == [{"path": ".env", "required": False}]
    assert (ROOT / ".env.example").is_file()
    assert any(p.endswith(f":{env['BIND_PORT']}") for p in service["ports"])


def test_the_local_speech_profile_adds_a_cpu_server_that_spark_control_is_pointed_at():
    services = compose()["services"]
    speech = services["speech"]
    assert speech["profiles"] == ["local-speech"] and speech["environment"]["ENGINE"] == "cpu"
    assert "profiles" not in services["spark-control"]  # plain `docker compose up`
    example = env_example()
    assert example["COMPOSE_PROFILES"] == "local-speech"
    command = speech_command()
    port = command[command.index("--port") + 1]
    assert example["PARAKEET_URL"] == f"http://speech:{port}" and port in speech["expose"]


def test_env_example_names_only_real_settings_and_every_compose_variable():
    example = set(env_example())
    settings = {name.upper() for name in Settings.model_fields}
    text = (ROOT / "docker-compose.yml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    assert variables <= example, variables - example
    assert example <= settings | variables | {"COMPOSE_PROFILES"}, example - settings


def test_every_subpackage_of_app_is_packaged():
    """pyproject lists packages by hand: a new folder of modules must be in it, or a
    wheel install has no `app.host` at all."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT / "image").parts)
             for p in (ROOT / "image" / "app").rglob("__init__.py")}
    assert found == listed
