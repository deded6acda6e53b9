"""One install, upgrade or rollback of the speech server on a host, step by step.

install:  context → build → start (the real name and port) → health → probe → switch
          (registered) → cleanup
upgrade:  context → build → start (`<name>-next` on the spare port, beside the old one)
          → health → probe → switch → cleanup
rollback: start (the previous image, beside) → health → probe → switch → cleanup

The switch hands over without a failed request through spark-control: its speech
client moves to the candidate first, then the old container stops (requests in flight
finish: uvicorn drains on SIGTERM), the new image starts under the real name and port,
and once that answers a probe the client moves back and the candidate goes. If anything
before the switch fails, the old container was never touched; if the switch itself
fails, the old container is put back. Whatever fails, `undo` removes what this job made
(candidate, tags, the build in progress) and says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Literal

import httpx

from .. import __version__
from ..audio.speech_client import SpeechClient
from ..config import Settings
from ..errors import HostUnreachable, RemoteError
from ..progress import Job
from ..remote.docker import Docker
from . import images
from .build import BuildFailed, build_argv, kill_build, run_build
from .checks import NotReady, probe, wait_loaded
from .container import main_port, plan, spare_port, url_at
from .context import ROOT, BuildContext, ContextMissing, load_context
from .images import Names

log = logging.getLogger(__name__)
Kind = Literal["install", "upgrade", "rollback"]
STEPS: dict[str, list[str]] = {
    "install": ["context", "build", "start", "health", "probe", "switch", "cleanup"],
    "upgrade": ["context", "build", "start", "health", "probe", "switch", "cleanup"],
    "rollback": ["start", "health", "probe", "switch", "cleanup"],
}
_STEP_LINE = re.compile(r"^Step (\d+)/(\d+) : (.*)")  # the legacy builder's step lines
HANDOVER_PAUSE_S = 1.0  # requests that read the old URL just before the switch connect


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step


@dataclass
class Made:
    """What this job has made on the host so far, so that `undo` removes exactly that."""

    tags_before: dict[str, str] = field(default_factory=dict)
    build_started: bool = False
    started: list[str] = field(default_factory=list)  # containers this job started


class Deployment:
    def __init__(self, job: Job, kind: Kind, settings: Settings, docker: Docker,
                 http: httpx.AsyncClient, speech: SpeechClient | None,
                 no_cache: bool = False) -> None:
        self.job, self.kind, self.settings = job, kind, settings
        self.docker, self.http, self.speech = docker, http, speech
        self.no_cache = no_cache
        self.names = Names(settings.speech_server_image, settings.parakeet_container)
        self.main_url = url_at(settings, main_port(settings))
        self.made = Made()
        self.context: BuildContext | None = None
        self.new_image = ""  # the image this job deploys
        self.old_image_id = ""  # what ran before it, if anything

    # -- the job ----------------------------------------------------------------

    async def run(self) -> str:
        """Every step in turn; the outcome sentence, or StepFailed."""
        self.made.tags_before = await images.tags(self.docker, self.names.repo)
        for name in STEPS[self.kind]:
            await self._step(name, getattr(self, f"_{name}"))
        return self._outcome()

    async def _step(self, name: str, work: object) -> None:
        await self.job.begin(name)
        try:
            detail = await work()  # type: ignore[operator]
        except (BuildFailed, NotReady, ContextMissing, RemoteError) as exc:
            await self.job.end(name, "failed", str(exc))
            raise StepFailed(name, str(exc)) from None
        except StepFailed as exc:
            await self.job.end(name, "failed", str(exc))
            raise
        await self.job.end(name, "ok", detail)

    def _outcome(self) -> str:
        what = {"install": "installed", "upgrade": "upgraded to",
                "rollback": "rolled back to"}[self.kind]
        return f"{self.names.container} {what} {self.new_image}"

    # -- steps ------------------------------------------------------------------

    async def _context(self) -> str:
        self.context = load_context(self.settings.speech_server_context_dir or ROOT)
        await sweep(self.docker, self.names)
        return (f"{len(self.context.files)} files, {self.context.size / 1e6:.1f} MB, "
                f"digest {self.context.short}")

    async def _build(self) -> str:
        assert self.context is not None
        tag = self.names.build(self.job.id)
        argv = build_argv(self.docker, tag=tag, build_args=self._build_args(),
                          labels=images.labels(__version__, self.context.digest,
                                               self.settings.speech_server_engine, self.job.id),
                          network=self.settings.speech_server_network, no_cache=self.no_cache)
        self.made.build_started = True
        await run_build(self.docker, self.context, argv, self._on_build_line,
                        self.settings.speech_server_build_timeout_s)
        self.new_image = self.names.image(self.context.digest)
        await self.docker.run_checked(["tag", tag, self.new_image])
        await self.docker.run_checked(["rmi", tag])
        return f"built {self.new_image} ({self.job.view.log_lines} log lines)"

    def _build_args(self) -> dict[str, str]:
        return {"BASE": self.settings.speech_server_base,
                "ENGINE": self.settings.speech_server_engine,
                "APP_DIR": self.settings.parakeet_app_dir}

    async def _on_build_line(self, line: str) -> None:
        await self.job.log(line)
        step = _STEP_LINE.match(line)
        if step:
            await self.job.begin("build", f"step {step[1]}/{step[2]}: {step[3][:120]}")

    async def _start(self) -> str:
        if self.kind == "rollback":
            self.new_image = await self._previous_image()
        old = await images.inspect_container(self.docker, self.names.container)
        self.old_image_id = old.image_id if old else ""
        beside = self.kind != "install"
        name = self.names.candidate if beside else self.names.container
        port = spare_port(self.settings) if beside else main_port(self.settings)
        await self._run_container(name, port, candidate=beside)
        where = "beside the old one" if beside else "as the service"
        return f"{name} from {self.new_image} on port {port}, {where}"

    async def _previous_image(self) -> str:
        """The previous image by a tag of its own (`<repo>:<digest>`) where it has one."""
        previous = await images.inspect_image(self.docker, self.names.previous)
        if previous is None:
            raise StepFailed("start", f"no {self.names.previous} image to roll back to")
        named = [tag for tag, image_id in (await images.tags(self.docker, self.names.repo)).items()
                 if image_id == previous.image_id and tag != self.names.previous]
        return sorted(named)[0] if named else previous.image_id

    async def _run_container(self, name: str, port: int, candidate: bool,
                             undone_by_undo: bool = True) -> None:
        gpus = await self._gpus()
        argv = plan(self.settings, name=name, image=self.new_image, port=port, gpus=gpus,
                    candidate=candidate).argv()
        if undone_by_undo:
            self.made.started.append(name)
        await self.docker.run_checked(argv, timeout=120)

    async def _gpus(self) -> bool:
        choice = self.settings.speech_server_gpus
        if choice != "auto":
            return choice == "all"
        runtimes = await self.docker.run_checked(["info", "--format", "{{json .Runtimes}}"])
        return b'"nvidia"' in runtimes.stdout

    def _serving_url(self) -> tuple[str, str]:
        if self.kind == "install":
            return self.names.container, self.main_url
        return self.names.candidate, url_at(self.settings, spare_port(self.settings))

    async def _health(self) -> str:
        name, url = self._serving_url()
        health = await wait_loaded(self.http, self.docker, name, url,
                                   self.settings.speech_server_health_timeout_s)
        return f"models loaded ({', '.join(health.models) or 'no names given'})"

    async def _probe(self) -> str:
        return await probe(self.http, self._serving_url()[1],
                           self.settings.speech_server_probe_timeout_s)

    async def _switch(self) -> str:
        if self.kind == "install":
            self.made.started.clear()  # it is the service now: never undone
            return f"{self.names.container} serves at {self.main_url}"
        await self._hand_over()
        return f"{self.names.container} runs {self.new_image} at {self.main_url}"

    async def _hand_over(self) -> None:
        names, docker = self.names, self.docker
        self._route(url_at(self.settings, spare_port(self.settings)))
        await asyncio.sleep(HANDOVER_PAUSE_S)
        await docker.stop(names.container, grace_s=120)
        await docker.run_checked(["rename", names.container, names.retired])
        try:  # the new container under the real name is put right by _put_old_back
            await self._run_container(names.container, main_port(self.settings), False,
                                      undone_by_undo=False)
            await wait_loaded(self.http, docker, names.container, self.main_url,
                              self.settings.speech_server_health_timeout_s)
            await probe(self.http, self.main_url, self.settings.speech_server_probe_timeout_s)
        except (NotReady, RemoteError) as exc:
            await self._put_old_back()
            raise StepFailed("switch", f"the new image did not take over: {exc}; the old "
                                       "container serves again") from None
        self._route(self.main_url)
        self.made.started = [names.candidate]  # stopped below; no longer needed
        await docker.stop(names.candidate, grace_s=120)
        await docker.run_checked(["rm", "-f", names.candidate, names.retired])
        self.made.started.clear()

    async def _put_old_back(self) -> None:
        names = self.names
        await self.docker.run_checked(["rm", "-f", names.container])
        await self.docker.run_checked(["rename", names.retired, names.container])
        await self.docker.start(names.container)
        await wait_loaded(self.http, self.docker, names.container, self.main_url,
                          self.settings.speech_server_health_timeout_s)
        self._route(self.main_url)

    async def _cleanup(self) -> str:
        if self.old_image_id and self.old_image_id != await self._image_id(self.new_image):
            await self.docker.run_checked(["tag", self.old_image_id, self.names.previous])
        removed = await self._remove_stale_tags()
        reclaimed = await prune(self.docker)
        kept = "previous image kept for rollback" if self.old_image_id else "no previous image"
        return f"{kept}; {removed} old tag(s) removed; {reclaimed}"

    async def _image_id(self, reference: str) -> str:
        found = await images.inspect_image(self.docker, reference)
        return found.image_id if found else ""

    async def _remove_stale_tags(self) -> int:
        """Tags of images that neither run nor are kept for rollback."""
        keep = {await self._image_id(self.new_image), await self._image_id(self.names.previous)}
        stale = [tag for tag, image_id in (await images.tags(self.docker, self.names.repo)).items()
                 if image_id not in keep]
        for tag in stale:
            await self.docker.ssh.run(self.docker.prefix + ["rmi", tag])  # in use: kept
        return len(stale)

    def _route(self, url: str) -> None:
        if self.speech is not None:
            self.speech.url = url

    # -- failure -----------------------------------------------------------------

    async def undo(self) -> str:
        """Remove what this job made; the old container keeps (or goes back to) serving."""
        self._route(self.main_url)
        if self.made.build_started:
            await kill_build(self.docker, self.job.id)
        for name in self.made.started:
            await self.docker.run_checked(["rm", "-f", name])
        if self.kind != "install":
            await self._old_serving()
        await self._restore_tags()
        await prune(self.docker)
        return self._what_serves()

    async def _old_serving(self) -> None:
        """A switch cut off between stopping the old container and starting the new one
        leaves it stopped (or renamed): it serves again."""
        names = self.names
        if await images.inspect_container(self.docker, names.container) is None:
            if await images.inspect_container(self.docker, names.retired) is None:
                return
            await self.docker.run_checked(["rename", names.retired, names.container])
        old = await images.inspect_container(self.docker, names.container)
        if old is not None and not old.running:
            await self.docker.start(names.container)

    async def _restore_tags(self) -> None:
        now = await images.tags(self.docker, self.names.repo)
        for tag, image_id in now.items():
            before = self.made.tags_before.get(tag)
            if before is None:
                await self.docker.ssh.run(self.docker.prefix + ["rmi", tag])
            elif before != image_id:
                await self.docker.run_checked(["tag", before, tag])

    def _what_serves(self) -> str:
        if self.kind == "install":
            return "nothing was left on the host"
        return f"{self.names.container} still serves its old image; nothing else was left"


async def undo_patiently(deployment: Deployment, patience_s: float) -> str:
    """`undo`, retried while the host is unreachable (an SSH drop mid-build), for up to
    `patience_s`: once it answers, what the job made is removed."""
    deadline = asyncio.get_running_loop().time() + patience_s
    while True:
        try:
            return await deployment.undo()
        except HostUnreachable as exc:
            if asyncio.get_running_loop().time() >= deadline:
                return (f"could not clean up ({exc}); the next install or upgrade removes "
                        "what this one left")
            await asyncio.sleep(2.0)


async def sweep(docker: Docker, names: Names) -> None:
    """Leftovers of a job that could not clean up (its host went away): candidate
    containers, build tags, the builds themselves."""
    await kill_build(docker, "")
    for name in await images.containers_labelled(docker, images.CANDIDATE):
        await docker.run_checked(["rm", "-f", name])
    if await images.inspect_container(docker, names.retired) is not None:
        if await images.inspect_container(docker, names.container) is None:
            # a switch cut off half-way: the old server is the only one; put it back
            await docker.run_checked(["rename", names.retired, names.container])
            await docker.start(names.container)
        else:
            await docker.run_checked(["rm", "-f", names.retired])
    for tag in await images.tags(docker, names.repo):
        if tag.startswith(f"{names.repo}:build-"):
            await docker.ssh.run(docker.prefix + ["rmi", tag])


async def prune(docker: Docker) -> str:
    """Dangling images of ours (labelled), and the build cache."""
    freed = []
    for args in (["image", "prune", "-f", "--filter", images.role_filter()],
                 # build cache unused for a day: the layers this build used stay, so
                 # the next upgrade reuses them; older ones go
                 ["builder", "prune", "-f", "--filter", "until=24h"]):
        result = await docker.ssh.run(docker.prefix + args, timeout=600)
        match = re.search(r"Total reclaimed space:\s*(\S+)", result.stdout.decode())
        if result.ok and match:
            freed.append(f"{args[0]} {match[1]}")
    return "reclaimed " + (", ".join(freed) or "nothing")
