"""What Docker holds on Spark 2's disk (`docker system df`) and the prune that frees it.

The prune removes only what nothing uses: dangling images (untagged layers left by
rebuilds) and the build cache. Tagged images, containers and volumes are left alone.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from ..remote.docker import Docker, parse_size

_RECLAIMED = re.compile(r"Total reclaimed space:\s*(\S+)")


class DockerDiskRow(BaseModel):
    kind: str  # Images, Containers, Local Volumes, Build Cache
    count: int
    active: int
    size_bytes: int
    reclaimable_bytes: int


class PruneResult(BaseModel):
    reclaimed_bytes: int
    detail: str  # what was removed, in words


def parse_system_df(text: str) -> list[DockerDiskRow]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        rows.append(DockerDiskRow(
            kind=row["Type"], count=int(row.get("TotalCount") or 0),
            active=int(row.get("Active") or 0), size_bytes=parse_size(row.get("Size") or "0B"),
            reclaimable_bytes=parse_size((row.get("Reclaimable") or "0B").split(" ")[0])))
    return rows


async def disk_usage(docker: Docker) -> list[DockerDiskRow]:
    result = await docker.run_checked(["system", "df", "--format", "{{json .}}"])
    return parse_system_df(result.stdout.decode())


async def prune(docker: Docker) -> PruneResult:
    images = await docker.run_checked(["image", "prune", "--force"])
    cache = await docker.run_checked(["builder", "prune", "--force"])
    freed = [_reclaimed(images.stdout.decode()), _reclaimed(cache.stdout.decode())]
    removed = images.stdout.decode().count("deleted: sha256:")
    detail = (f"removed {removed} dangling image layer(s) ({_human(freed[0])}) and "
              f"{_human(freed[1])} of build cache")
    return PruneResult(reclaimed_bytes=sum(freed), detail=detail)


def _reclaimed(text: str) -> int:
    match = _RECLAIMED.search(text)
    return parse_size(match.group(1)) if match else 0


def _human(size: int) -> str:
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"
