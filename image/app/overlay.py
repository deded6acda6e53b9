"""The overlay: the speech-server files spark-control ships, and how they compare with
what the parakeet-asr container runs.

`manifest.toml` beside the files maps each local file to a path under
PARAKEET_APP_DIR. Container hashes come from one `sha256sum` run inside the container.
"""

from __future__ import annotations

import hashlib
import posixpath
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

FileStatus = Literal["in_sync", "drift", "missing"]
OverallStatus = Literal["in_sync", "drift", "missing", "unreachable", "local"]


class OverlayFile(BaseModel):
    name: str  # the local file name
    path: str  # absolute path inside the container
    local_sha256: str
    container_sha256: str | None
    status: FileStatus


@dataclass(frozen=True)
class Entry:
    name: str
    local: Path
    remote: str

    def sha256(self) -> str:
        return hashlib.sha256(self.local.read_bytes()).hexdigest()


class Manifest:
    def __init__(self, source_dir: Path, app_dir: str) -> None:
        self.source_dir = source_dir
        self.app_dir = app_dir
        table = tomllib.loads((source_dir / "manifest.toml").read_text())["files"]
        self.entries = [Entry(name, source_dir / name, posixpath.join(app_dir, target))
                        for name, target in table.items()]

    @property
    def remote_paths(self) -> list[str]:
        return [e.remote for e in self.entries]

    def files(self) -> dict[str, bytes]:
        """Container path -> content, for a copy."""
        return {e.remote: e.local.read_bytes() for e in self.entries}

    def compare(self, container: dict[str, str]) -> list[OverlayFile]:
        """Per file: local vs container hash (`container` maps path -> sha256)."""
        result = []
        for e in self.entries:
            local, remote = e.sha256(), container.get(e.remote)
            status: FileStatus = ("missing" if remote is None
                                  else "in_sync" if remote == local else "drift")
            result.append(OverlayFile(name=e.name, path=e.remote, local_sha256=local,
                                      container_sha256=remote, status=status))
        return result


def parse_sha256sum(output: str) -> dict[str, str]:
    """`sha256sum` lines ("<hash>  <path>") -> {path: hash}; unreadable lines are skipped."""
    hashes = {}
    for line in output.splitlines():
        digest, _, path = line.partition("  ")
        if len(digest) == 64 and path:
            hashes[path] = digest
    return hashes


def overall(files: list[OverlayFile]) -> OverallStatus:
    statuses = {f.status for f in files}
    if "missing" in statuses:
        return "missing"
    return "drift" if "drift" in statuses else "in_sync"
