"""Names and labels of what the install manager makes on the Spark, and reading them back.

Every image it builds carries labels: the role (so a prune never touches anyone
else's images), the spark-control version, the build context's digest and the engine.
Tags in the configured repository (SPEECH_SERVER_IMAGE):
- `<repo>:<digest[:12]>`: a built image, named by its context;
- `<repo>:build-<job>`: a build in progress (renamed when the job goes on, removed
  when it fails, so a failed or cut-off build leaves no tag behind);
- `<repo>:previous`: what ran before the last switch, for a one-click rollback.
The candidate container of an upgrade is `<name>-next`, labelled as one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..remote.docker import Docker
from ..remote.ssh import CommandResult

ROLE, ROLE_VALUE = "spark-control.role", "speech-server"
VERSION, CONTEXT = "spark-control.version", "spark-control.context"
ENGINE, JOB = "spark-control.engine", "spark-control.job"
CANDIDATE = "spark-control.candidate"


@dataclass(frozen=True)
class Names:
    repo: str
    container: str

    def image(self, digest: str) -> str:
        return f"{self.repo}:{digest[:12]}"

    def build(self, job_id: str) -> str:
        return f"{self.repo}:build-{job_id}"

    @property
    def previous(self) -> str:
        return f"{self.repo}:previous"

    @property
    def candidate(self) -> str:
        return f"{self.container}-next"

    @property
    def retired(self) -> str:
        return f"{self.container}-old"


def labels(version: str, digest: str, engine: str, job_id: str) -> dict[str, str]:
    return {ROLE: ROLE_VALUE, VERSION: version, CONTEXT: digest, ENGINE: engine, JOB: job_id}


@dataclass(frozen=True)
class Installed:
    """A container (or an image) as the install manager reads it back."""

    name: str
    image: str  # the reference it was run from
    image_id: str
    running: bool
    labels: dict[str, str]

    @property
    def managed(self) -> bool:
        return self.labels.get(ROLE) == ROLE_VALUE

    @property
    def digest(self) -> str | None:
        return self.labels.get(CONTEXT)

    @property
    def version(self) -> str | None:
        return self.labels.get(VERSION)


async def inspect_container(docker: Docker, name: str) -> Installed | None:
    result = await docker.ssh.run(docker.prefix + ["inspect", "--type", "container", name])
    if not result.ok:
        _raise_unless_missing(result)
        return None
    data = json.loads(result.stdout)[0]
    config, state = data.get("Config") or {}, data.get("State") or {}
    return Installed(name=data.get("Name", "").lstrip("/"), image=config.get("Image", ""),
                     image_id=data.get("Image", ""), running=bool(state.get("Running")),
                     labels=dict(config.get("Labels") or {}))


async def inspect_image(docker: Docker, reference: str) -> Installed | None:
    result = await docker.ssh.run(docker.prefix + ["image", "inspect", reference])
    if not result.ok:
        _raise_unless_missing(result)
        return None
    data = json.loads(result.stdout)[0]
    return Installed(name=reference, image=reference, image_id=data.get("Id", ""),
                     running=False, labels=dict((data.get("Config") or {}).get("Labels") or {}))


async def tags(docker: Docker, repo: str) -> dict[str, str]:
    """Every tag of `repo` on the host -> its image id."""
    result = (await docker.run_checked(["images", "--no-trunc", "--format",
                                        "{{.Tag}} {{.ID}}", repo]))
    found = {}
    for line in result.stdout.decode().splitlines():
        tag, _, image_id = line.partition(" ")
        if tag and tag != "<none>":
            found[f"{repo}:{tag}"] = image_id
    return found


async def containers_labelled(docker: Docker, label: str) -> list[str]:
    result = await docker.run_checked(["ps", "-a", "--filter", f"label={label}",
                                       "--format", "{{.Names}}"])
    return result.stdout.decode().split()


def role_filter() -> str:
    return f"label={ROLE}={ROLE_VALUE}"


def _raise_unless_missing(result: CommandResult) -> None:
    if "No such" not in result.stderr:
        result.check()


def label_args(values: Mapping[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--label", f"{key}={value}")]
