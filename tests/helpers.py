"""Small builders shared by the tests."""
from __future__ import annotations

import numpy as np

from edgebrew import reference
from edgebrew.ir import Graph, Node, TensorInfo


def one_op_graph(op_type, attrs, input_shapes, weights=(), n_outputs=1, name="op"):
    """A graph holding a single node fed by graph inputs in0, in1, ... with outputs out0, ..."""
    inputs = [TensorInfo(f"in{i}", tuple(s)) for i, s in enumerate(input_shapes)]
    wnames = [f"{name}.w{i}" for i in range(len(weights))]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = Node(name, op_type, [t.name for t in inputs], outs, dict(attrs), wnames)
    g = Graph("test", inputs, [node], outs,
              {w: np.asarray(a) for w, a in zip(wnames, weights)})
    g.infer_shapes()
    return g


def run_op(op_type, attrs, inputs, weights=(), n_outputs=1, dtype=np.float64):
    """Run one op through the reference executor; returns the list of outputs."""
    g = one_op_graph(op_type, attrs, [np.shape(x) for x in inputs], weights, n_outputs)
    res = reference.run(g, {f"in{i}": x for i, x in enumerate(inputs)}, dtype=dtype)
    return [res[f"out{i}"] for i in range(n_outputs)]


def rel_error(a, ref):
    """max|a - ref| / max|ref| over a tensor (the project's definition of relative error)."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    return float(np.max(np.abs(a - ref)) / scale) if scale > 0 else float(np.max(np.abs(a - ref), initial=0.0))


def run_op_c(op_type, attrs, inputs, weights=(), n_outputs=1, threads=1):
    """Run one op through the C runtime (bundle -> libedgebrew); float32 in and out."""
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session
    g = one_op_graph(op_type, attrs, [np.shape(x) for x in inputs],
                     [np.asarray(w, np.float32) for w in weights], n_outputs)
    with Session(Bundle(g), threads=threads) as s:
        res = s.run({f"in{i}": np.asarray(x, np.float32) for i, x in enumerate(inputs)})
    return [res[f"out{i}"] for i in range(n_outputs)]


def c_runtime_available():
    try:
        import edgebrew._libedgebrew  # noqa: F401
        return True
    except ImportError:
        return False


def expect_invalid_bundle(op, attrs, shapes, weights=(), n_outputs=1, new_attrs=None,
                          new_weights=None, match=None):
    """Build a valid one-op graph, break its attributes (None removes one) or weights (the
    node keeps as many weights as given) behind the IR's back, and check that the C runtime
    refuses the bundle with an INVALID_BUNDLE message naming the op. Returns the message."""
    import pytest
    from edgebrew.bundle import Bundle
    from edgebrew.errors import EdgebrewError
    from edgebrew.runtime import Session
    g = one_op_graph(op, attrs, shapes, [np.asarray(w, np.float32) for w in weights], n_outputs)
    node = g.nodes[0]
    if new_attrs is not None:
        node.attrs = {k: v for k, v in dict(node.attrs, **new_attrs).items()
                      if not (k in new_attrs and new_attrs[k] is None)}
    if new_weights is not None:
        node.weights = node.weights[:len(new_weights)]
        for name, w in zip(node.weights, new_weights):
            g.initializers[name] = np.asarray(w, np.float32)
    with pytest.raises(EdgebrewError) as info:
        Session(Bundle(g))
    msg = str(info.value)
    assert "EB_ERR_INVALID_BUNDLE" in msg and f"'{node.name}' ({op})" in msg, msg
    if match:
        assert match in msg, msg
    return msg
