"""Run single C ops through mock_core.c (no bundle, no session) from Python, via ctypes.

A development aid for the op kernels while the bundle writer and session are elsewhere, and a
second way to test them: ``run_op_mock(op_type, attrs, inputs, weights, threads=1)`` mirrors
``tests/helpers.run_op``. The library is built on first use with gcc into a temp directory.

    python edgebrew/kernels_c/tests/run_mock.py      # a quick random sweep against the reference
"""
from __future__ import annotations

import ctypes
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)                      # edgebrew/kernels_c
OPS = ["convolution", "deconvolution", "pooling", "inner_product", "lrn"]

_lib = None


def build(extra_flags=()):
    src = [os.path.join(HERE, "mock_core.c")]
    src += [p for p in (os.path.join(ROOT, "src", "ops", f"{o}.c") for o in OPS) if os.path.exists(p)]
    src += glob.glob(os.path.join(ROOT, "src", "kernels", "*.c"))
    src += glob.glob(os.path.join(ROOT, "src", "kernels", "generic", "*.c"))
    out = os.path.join(tempfile.mkdtemp(prefix="ebmock"), "libebmock.so")
    cmd = ["gcc", "-std=c11", "-O2", "-g", "-shared", "-fPIC", *extra_flags,
           "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"),
           *src, "-lpthread", "-lm", "-o", out]
    subprocess.run(cmd, check=True)
    return out


def lib():
    global _lib
    if _lib is None:
        path = os.environ.get("EB_MOCK_LIB") or build(os.environ.get("EB_MOCK_CFLAGS", "").split())
        _lib = ctypes.CDLL(path)
        _lib.mock_run_op.restype = ctypes.c_int
        _lib.mock_isa.restype = ctypes.c_char_p
        _lib.mock_last_run_ns.restype = ctypes.c_double
    return _lib


def encode_attrs(attrs):
    parts = []
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            parts.append(f"{k}=i:{int(v)}")
        elif isinstance(v, (int, np.integer)):
            parts.append(f"{k}=i:{int(v)}")
        elif isinstance(v, (float, np.floating)):
            parts.append(f"{k}=f:{float(v)!r}")
        elif isinstance(v, str):
            parts.append(f"{k}=s:{v}")
        elif all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
            parts.append(f"{k}=I:" + ",".join(str(int(e)) for e in v))
        else:
            parts.append(f"{k}=F:" + ",".join(repr(float(e)) for e in v))
    return ";".join(parts)


class MockError(RuntimeError):
    def __init__(self, status, msg):
        super().__init__(f"status {status}: {msg}")
        self.status = status


def _dims(arrs):
    nd = (ctypes.c_int * max(1, len(arrs)))(*[a.ndim for a in arrs])
    flat = []
    for a in arrs:
        flat += list(a.shape) + [0] * (8 - a.ndim)
    dims = (ctypes.c_int64 * max(1, len(flat)))(*flat)
    ptrs = (ctypes.POINTER(ctypes.c_float) * max(1, len(arrs)))(
        *[a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for a in arrs])
    return nd, dims, ptrs


def run_raw(op_type, attrs, inputs, weights, out_shapes, threads=1):
    """Run with explicit output shapes (to test prepare's validation); returns outputs."""
    inputs = [np.ascontiguousarray(x, np.float32) for x in inputs]
    weights = [np.ascontiguousarray(w, np.float32) for w in weights]
    outs = [np.full(s, np.nan, np.float32) for s in out_shapes]
    err = ctypes.create_string_buffer(600)
    a = _dims(inputs), _dims(weights), _dims(outs)
    st = lib().mock_run_op(op_type.encode(), encode_attrs(attrs).encode(),
                           len(inputs), *a[0], len(weights), *a[1], len(outs), *a[2],
                           int(threads), err, len(err))
    if st != 0:
        raise MockError(st, err.value.decode())
    return outs


def run_op_mock(op_type, attrs, inputs, weights=(), threads=1):
    """Like tests/helpers.run_op, through the C op: shapes from the IR's shape inference."""
    sys.path.insert(0, os.path.join(ROOT, "..", "..", "tests"))
    from helpers import one_op_graph
    g = one_op_graph(op_type, attrs, [np.shape(x) for x in inputs], weights)
    shapes = [g.shapes[o] for o in g.output_names]
    return run_raw(op_type, g.nodes[0].attrs, inputs, weights, shapes, threads)


if __name__ == "__main__":
    print("isa:", lib().mock_isa().decode())
