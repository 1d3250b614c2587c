"""edgebrew.Session: run a .brew bundle with libedgebrew (through the cffi extension)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import EdgebrewError, InputError

_DTYPES = {0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int8),
           3: np.dtype(np.uint8), 4: np.dtype(np.int32)}


def _lib():
    try:
        from .._libedgebrew import ffi, lib
    except ImportError as e:
        raise EdgebrewError("the C runtime (edgebrew._libedgebrew) is not built: reinstall with "
                            f"'pip install .' or run edgebrew/runtime/_build_libedgebrew.py ({e})") \
            from None
    return ffi, lib


class RuntimeError_(EdgebrewError):
    """libedgebrew returned an error status."""

    def __init__(self, status_name, message):
        self.status = status_name
        super().__init__(f"{message} [{status_name}]" if message else status_name)


def _check(status, context=""):
    if status != 0:
        ffi, lib = _lib()
        msg = ffi.string(lib.eb_last_error()).decode("utf-8", "replace")
        name = ffi.string(lib.eb_status_name(status)).decode()
        raise RuntimeError_(name, f"{context}{msg}")


@dataclass(frozen=True)
class IOInfo:
    """An input or output of a bundle: name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


class Model:
    """A loaded, verified bundle (shareable by several sessions)."""

    def __init__(self, source):
        from ..bundle import Bundle
        ffi, lib = _lib()
        self._ffi, self._lib = ffi, lib
        out = ffi.new("eb_model **")
        if isinstance(source, Bundle):
            source = source.to_bytes()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._keep = data
            _check(lib.eb_model_load_memory(data, len(data), 1, out), "bundle: ")
            self.source = "<bytes>"
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise EdgebrewError(f"{path}: bundle not found")
            _check(lib.eb_model_load_file(str(path).encode(), out), f"{path}: ")
            self.source = str(path)
        else:
            raise InputError(f"Session takes a .brew path, bytes or a Bundle, not "
                             f"{type(source).__name__}")
        self._ptr = ffi.gc(out[0], lib.eb_model_free)
        self.inputs = [self._io(0, i) for i in range(lib.eb_model_num_inputs(self._ptr))]
        self.outputs = [self._io(1, i) for i in range(lib.eb_model_num_outputs(self._ptr))]

    def _io(self, which, i):
        ffi, lib = self._ffi, self._lib
        dims = ffi.new("int64_t[8]")
        nd = lib.eb_model_io_shape(self._ptr, which, i, dims)
        name = ffi.string(lib.eb_model_io_name(self._ptr, which, i)).decode()
        return IOInfo(name, tuple(int(dims[k]) for k in range(nd)),
                      _DTYPES[int(lib.eb_model_io_dtype(self._ptr, which, i))])


class Session:
    """Runs a bundle: ``Session(path | bytes | Bundle, threads=1).run(inputs)``.

    ``inputs`` is a dict {name: array}, or one array for a one-input model; arrays are network
    tensors (NCHW, preprocessed), float32, used as given. Returns {output name: array}.
    """

    def __init__(self, model, threads: int = 1):
        self.model = model if isinstance(model, Model) else Model(model)
        ffi, lib = self._ffi, self._lib = self.model._ffi, self.model._lib
        if int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        opts = ffi.new("eb_session_options *")
        opts.threads = int(threads)
        out = ffi.new("eb_session **")
        _check(lib.eb_session_create(self.model._ptr, opts, out), "session: ")
        self._ptr = out[0]
        self.threads = int(threads)

    @property
    def inputs(self):
        return self.model.inputs

    @property
    def outputs(self):
        return self.model.outputs

    def run(self, inputs) -> dict[str, np.ndarray]:
        if self._ptr is None:
            raise EdgebrewError("session is closed")
        ffi, lib = self._ffi, self._lib
        feeds = self._check_inputs(inputs)
        for i, arr in enumerate(feeds):
            _check(lib.eb_session_set_input(self._ptr, i, ffi.from_buffer("float[]", arr),
                                            arr.size), f"input '{self.inputs[i].name}': ")
        _check(lib.eb_session_run(self._ptr), "run: ")
        results = {}
        data = ffi.new("float **")
        count = ffi.new("size_t *")
        dims = ffi.new("int64_t[8]")
        for i, info in enumerate(self.outputs):
            _check(lib.eb_session_get_output(self._ptr, i, data, count))
            nd = lib.eb_session_output_shape(self._ptr, i, dims)
            shape = tuple(int(dims[k]) for k in range(nd))
            buf = ffi.buffer(data[0], count[0] * 4)
            results[info.name] = np.frombuffer(buf, np.float32).reshape(shape).copy()
        return results

    def _check_inputs(self, inputs):
        if isinstance(inputs, np.ndarray):
            if len(self.inputs) != 1:
                raise InputError(f"the model has {len(self.inputs)} inputs "
                                 f"({[t.name for t in self.inputs]}): pass a dict by name")
            inputs = {self.inputs[0].name: inputs}
        if not isinstance(inputs, Mapping):
            raise InputError(f"inputs must be a dict {{name: array}} or one array, not "
                             f"{type(inputs).__name__}")
        names = [t.name for t in self.inputs]
        unknown = [k for k in inputs if k not in names]
        if unknown:
            raise InputError(f"unknown input(s) {unknown}; the model's inputs are {names}")
        feeds = []
        for info in self.inputs:
            if info.name not in inputs:
                raise InputError(f"input '{info.name}' {info.shape} was not given")
            a = inputs[info.name]
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            if a.dtype != np.float32:
                raise InputError(f"input '{info.name}' has dtype {a.dtype}; the model takes "
                                 "float32 (use .astype(np.float32))")
            if tuple(a.shape) != info.shape:
                raise InputError(f"input '{info.name}' has shape {tuple(a.shape)}; the model "
                                 f"takes {info.shape}")
            feeds.append(np.ascontiguousarray(a))
        return feeds

    def close(self):
        if self._ptr is not None:
            self._lib.eb_session_free(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
