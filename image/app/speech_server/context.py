"""The speech server's build context: the files `docker build` on the Spark receives.

It is streamed as a tar over SSH into `docker build -` (nothing is written on the
Spark), and its digest, a sha256 over every file's path and content, labels the image
it makes: a running image whose digest differs from this checkout's is outdated.
The same files sit at the same paths in the repository and in the spark-control
image (image/Dockerfile copies them), so ROOT is either.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = "image/Dockerfile.speech"
FILES = (DOCKERFILE, "pyproject.toml", "constraints/main.txt", "constraints/nemo.txt")
PATCHES = "image/parakeet_patches"
_SKIP = ("__pycache__", ".pyc", ".pyo")


class ContextMissing(RuntimeError):
    """A file of the build context is not where spark-control expects it."""


@dataclass(frozen=True)
class BuildContext:
    files: dict[str, bytes]  # path relative to the context root -> content
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self.files))

    @property
    def short(self) -> str:
        return self.digest[:12]

    @property
    def size(self) -> int:
        return sum(map(len, self.files.values()))

    def tar(self) -> bytes:
        """A reproducible tar: fixed owner, mode and time, sorted paths."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(self.files):
                member = tarfile.TarInfo(path)
                member.size, member.mode, member.mtime = len(self.files[path]), 0o644, 0
                tar.addfile(member, io.BytesIO(self.files[path]))
        return buffer.getvalue()


_DIGESTS: dict[Path, tuple[tuple[tuple[str, int, int], ...], str]] = {}


def context_digest(root: Path = ROOT) -> str:
    """`load_context(root).digest`, hashed again only when a file's size or mtime
    changed: the status read (every dashboard poll) stats 30 files instead of hashing
    33 MB."""
    paths = _paths(root)
    signature = tuple((p, (root / p).stat().st_size, (root / p).stat().st_mtime_ns)
                      for p in paths)
    cached = _DIGESTS.get(root)
    if cached is None or cached[0] != signature:
        _DIGESTS[root] = (signature, load_context(root).digest)
    return _DIGESTS[root][1]


def load_context(root: Path = ROOT) -> BuildContext:
    return BuildContext({path: (root / path).read_bytes() for path in _paths(root)})


def _paths(root: Path) -> list[str]:
    """The context's files under `root`; ContextMissing names any that is not there."""
    patches = root / PATCHES
    if not patches.is_dir():
        raise ContextMissing(f"no {PATCHES} under {root}: the speech server's build "
                             "context ships with spark-control's checkout and image")
    paths = [*FILES, *(p.relative_to(root).as_posix() for p in sorted(patches.rglob("*"))
                       if p.is_file() and not _skipped(p))]
    missing = [path for path in paths if not (root / path).is_file()]
    if missing:
        raise ContextMissing(f"the speech server's build context lacks {', '.join(missing)} "
                             f"(under {root})")
    return paths


def _skipped(path: Path) -> bool:
    return any(part == "__pycache__" for part in path.parts) or path.suffix in _SKIP


def _digest(files: dict[str, bytes]) -> str:
    sha = hashlib.sha256()
    for path in sorted(files):
        content = files[path]
        sha.update(f"{path}\0{len(content)}\0".encode())
        sha.update(content)
    return sha.hexdigest()
