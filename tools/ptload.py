"""Read a PyTorch zip checkpoint (torch.save of a state dict, format >= 1.6) into
numpy arrays WITHOUT torch: the archive's data.pkl is unpickled with a restricted
Unpickler whose persistent_load maps storages to the raw little-endian blobs in
archive/data/<key>; only the few torch/collections globals a state dict needs are
allowed, anything else raises (so no arbitrary code runs).
"""
from __future__ import annotations

import collections
import pickle
import zipfile

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "BFloat16Storage": None,
}


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    arr, = storage
    if len(size) == 0:
        return np.array(arr[offset], dtype=arr.dtype)
    itemsize = arr.dtype.itemsize
    out = np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size),
                                          strides=tuple(s * itemsize for s in stride))
    return np.array(out)  # own, contiguous copy


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf, prefix):
        super().__init__(fh)
        self.zf, self.prefix, self.cache = zf, prefix, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "builtins" and name in ("set", "frozenset", "dict", "list", "tuple"):
            return {"set": set, "frozenset": frozenset, "dict": dict, "list": list, "tuple": tuple}[name]
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _location, numel = pid
        assert kind == "storage"
        if key not in self.cache:
            dtype = _DTYPES[stype.name]
            if dtype is None:
                raise ValueError(f"unsupported storage {stype.name}")
            raw = self.zf.read(f"{self.prefix}/data/{key}")
            self.cache[key] = (np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))[:numel],)
        return self.cache[key]


def load_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")][0]
        prefix = pkl[: -len("/data.pkl")]
        with zf.open(pkl) as fh:
            obj = _Unpickler(fh, zf, prefix).load()
    return obj
