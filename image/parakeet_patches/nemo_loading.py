"""Where a NeMo model comes from: a Hugging Face hub name or a local `.nemo` file.

ASR_MODEL, DIAR_MODEL and EMBEDDING_MODEL each take either form:
- a path to a `.nemo` file -> `cls.restore_from(restore_path=, map_location=)`;
- a hub name such as `nvidia/parakeet-tdt-0.6b-v3` -> `cls.from_pretrained(model_name=,
  map_location=)`, which reads the Hugging Face cache (HF_HUB_CACHE, or HF_HOME/hub)
  and downloads only what is missing; with HF_HUB_OFFLINE=1 it never uses the network.

`from_pretrained` rejects a path (HFValidationError), and a name that is neither cached
nor downloadable fails deep inside huggingface_hub (OfflineModeIsEnabled,
LocalEntryNotFoundError, a connection error) or, for NGC names, with "Not able to
download url": each becomes one EngineError("load") that names the variable, the model
and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine_base import EngineError

FETCH_ERRORS = {"HFValidationError", "OfflineModeIsEnabled", "LocalEntryNotFoundError",
                "RepositoryNotFoundError", "EntryNotFoundError", "RevisionNotFoundError",
                "GatedRepoError", "ConnectError", "ConnectionError"}


def is_path(spec: str) -> bool:
    """A file path rather than a hub name ("org/name" is both a name and a relative path:
    it is a name unless such a file exists)."""
    return (spec.endswith(".nemo") or spec.startswith(("/", "./", "../", "~"))
            or Path(spec).is_file())


def load_model(cls: Any, spec: str, variable: str, device: Any) -> Any:
    """The model `spec` names, as an instance of `cls`, on `device`, in eval mode."""
    if is_path(spec):
        model = _restore(cls, Path(spec).expanduser(), variable, device)
    else:
        model = _pretrained(cls, spec, variable, device)
    if not isinstance(model, cls):
        raise EngineError("load", f"{variable}={spec} holds a {type(model).__name__}, "
                                  f"not a {cls.__name__}: point {variable} at the right model")
    model.eval()
    return model


def _restore(cls: Any, path: Path, variable: str, device: Any) -> Any:
    if not path.is_file():
        raise EngineError("load", f"{variable}={path}: no such file; mount the .nemo file "
                                  f"into the container, or set {variable} to a hub name")
    try:
        return cls.restore_from(restore_path=str(path), map_location=device)
    except Exception as exc:
        raise EngineError("load", f"{variable}={path} is not a loadable .nemo file "
                                  f"({type(exc).__name__}: {exc})") from exc


def _pretrained(cls: Any, name: str, variable: str, device: Any) -> Any:
    try:
        return cls.from_pretrained(model_name=name, map_location=device)
    except Exception as exc:
        if not _is_fetch_failure(exc):
            raise EngineError("load", f"{variable}={name}: {type(exc).__name__}: {exc}") from exc
        raise EngineError("load", _not_cached(name, variable, exc)) from exc


def _is_fetch_failure(exc: BaseException) -> bool:
    chain = [exc, exc.__cause__, exc.__context__]
    return any(e is not None and (type(e).__name__ in FETCH_ERRORS
                                  or isinstance(e, ConnectionError)
                                  or "download" in str(e).lower()) for e in chain)


def _not_cached(name: str, variable: str, exc: BaseException) -> str:
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else f"{type(exc).__name__}: {exc}"
    return (f"{variable}={name} is not in the Hugging Face cache ({cache}) and cannot be "
            f"downloaded ({why}). Fetch it where there is network "
            f"(`huggingface-cli download {name}`) into that cache, or set {variable} to "
            f"the path of a local .nemo file")
