"""Stand-in for the bits of torch that the NeMo engine and the `nemo` stand-in touch.

Tests put tests/standins first on sys.path, so `import torch` finds this instead of the
real one (which this machine does not have). Like real torch, a tensor on "cuda" refuses
`.numpy()` until it is moved with `.cpu()`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__version__ = "0.0-standin"
float32 = np.float32


class device:  # noqa: N801 - mirrors torch.device
    def __init__(self, kind: str = "cpu") -> None:
        self.type = str(kind).split(":")[0]

    def __str__(self) -> str:
        return self.type

    def __repr__(self) -> str:
        return f"device(type='{self.type}')"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)


class Tensor:
    """A numpy array with the tensor methods callers use on NeMo outputs."""

    def __init__(self, data: Any, device_: Any = "cpu") -> None:
        self._data = np.asarray(data)
        self.device = device(str(device_))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> Any:
        return self._data.dtype

    def dim(self) -> int:
        return self._data.ndim

    def detach(self) -> Tensor:
        return self

    def cpu(self) -> Tensor:
        return Tensor(self._data, "cpu")

    def to(self, target: Any) -> Tensor:
        return Tensor(self._data, target)

    def float(self) -> Tensor:
        return Tensor(self._data.astype(np.float32), self.device)

    def numpy(self) -> np.ndarray:
        if self.device.type != "cpu":
            raise TypeError(f"can't convert {self.device.type}:0 device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        return self._data

    def squeeze(self, dim: int | None = None) -> Tensor:
        data = self._data.squeeze() if dim is None else np.squeeze(self._data, axis=dim)
        return Tensor(data, self.device)

    def tolist(self) -> Any:
        return self._data.tolist()

    def __getitem__(self, index: Any) -> Tensor:
        return Tensor(self._data[index], self.device)

    def __len__(self) -> int:
        return len(self._data)


def tensor(data: Any, device: Any = "cpu", dtype: Any = None) -> Tensor:  # noqa: A002
    array = np.asarray(data, dtype=dtype) if dtype is not None else np.asarray(data)
    return Tensor(array, device)


def as_tensor(data: Any) -> Tensor:
    return data if isinstance(data, Tensor) else Tensor(data)


class _Cuda:
    """torch.cuda: tests set `available` to pretend a GPU is there."""

    available = False

    def is_available(self) -> bool:
        return self.available

    def empty_cache(self) -> None:
        return None


cuda = _Cuda()
