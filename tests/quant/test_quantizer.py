"""The int8 rewrite (edgebrew.quant.quantizer): where int8 runs, Quantize/Dequantize placement,
weight and bias quantization, keep_fp32; and the integer reference of the result against the
float32 graph (an independent computation of the same network)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebrew import convert, reference
from edgebrew.ir import Graph, Node, TensorInfo
from edgebrew.quant.calibrate import collect_ranges
from edgebrew.quant.quantizer import QuantizationError, quantize_int8, to_fp16
from edgebrew.quant.samples import load_samples

REPO = Path(__file__).resolve().parents[2]
LENET = REPO / "examples" / "lenet_mnist"


@pytest.fixture(scope="module")
def lenet():
    b = convert(LENET / "lenet_deploy.prototxt", LENET / "lenet_mnist.caffemodel",
                scale=0.00390625)
    digits = load_samples(LENET / "digits", b.metadata.preprocessing, (1, 1, 28, 28))
    ranges = collect_ranges(b.graph, digits, "minmax", progress=False)
    return b.graph, digits, ranges


def test_lenet_int8_layout(lenet):
    graph, digits, ranges = lenet
    q, decisions = quantize_int8(graph, ranges)
    assert [n.op_type for n in q.nodes] == ["Quantize", "Convolution", "Pooling", "Convolution",
                                          "Pooling", "InnerProduct", "InnerProduct",
                                          "Dequantize", "Softmax"]
    assert all(v == "int8" for k, v in decisions.items()), decisions
    assert q.output_names == ["prob"] and q.dtype_of("prob") == np.float32
    assert q.dtype_of("ip2:int8") == np.int8 and q.dtype_of("conv1") == np.int8
    # pooling keeps its input's grid
    assert q.quant["pool1"] == q.quant["conv1"]
    # weights: per output channel, symmetric, within half a step of the float weights
    conv1 = q.node("conv1")
    w8 = q.initializers[conv1.weights[0]]
    wq = q.quant[conv1.weights[0]]
    w = graph.initializers[graph.node("conv1").weights[0]]
    assert w8.dtype == np.int8 and wq.axis == 0 and len(wq.scale) == w.shape[0]
    assert np.all(np.abs(w8) <= 127) and np.all(np.abs(w8).reshape(len(w8), -1).max(1) == 127)
    err = np.abs(w8 * wq.scale[:, None, None, None] - w)
    assert np.all(err <= wq.scale[:, None, None, None] / 2 * (1 + 1e-6))
    # bias: int32 on the input scale x weight scale grid
    b32 = q.initializers[conv1.weights[1]]
    b = graph.initializers[graph.node("conv1").weights[1]]
    step = q.quant["data:int8"].s * wq.scale.astype(np.float64)
    assert b32.dtype == np.int32 and np.all(np.abs(b32 * step - b) <= step / 2 + 1e-12)


def test_lenet_int8_reference_follows_float(lenet):
    graph, digits, ranges = lenet
    q, _ = quantize_int8(graph, ranges)
    for i in range(len(digits)):
        f = reference.run(graph, digits[i:i + 1])["prob"]
        g = reference.run(q, digits[i:i + 1])["prob"]
        assert g.argmax() == f.argmax()
        assert np.abs(g - f).max() < 0.05


def test_keep_fp32_by_layer_and_by_fused_name(lenet):
    graph, _, ranges = lenet
    q, decisions = quantize_int8(graph, ranges, keep_fp32=["ip1"])
    assert decisions["ip1"].startswith("kept")
    ip1 = q.node("ip1")
    assert q.dtype_of(ip1.inputs[0]) == np.float32 and q.dtype_of(ip1.outputs[0]) == np.float32
    assert [n.op_type for n in q.nodes if n.name.endswith(":dequantize")] == ["Dequantize"] * 2
    # relu1 was fused into ip1 by the optimizer: naming it keeps ip1 in float
    q2, decisions2 = quantize_int8(graph, ranges, keep_fp32=["relu1"])
    assert decisions2["ip1"].startswith("kept")
    with pytest.raises(QuantizationError, match="no layer named 'nope'"):
        quantize_int8(graph, ranges, keep_fp32=["nope"])


def _branchy_graph():
    """conv a, conv b -> Eltwise SUM (+ReLU) ; concat with conv c -> MAX pool -> IP;
    plus a Sigmoid-fused conv that has no int8 form."""
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    conv = lambda name, i, o, act=None: Node(  # noqa: E731
        name, "Convolution", [i], [o],
        {"num_output": 8, "kernel": (3, 3), "pad": (1, 1),
         **({"activation": act} if act else {})}, [f"{name}.w", f"{name}.b"])
    nodes = [conv("a", "data", "a"), conv("b", "data", "b"),
             Node("sum", "Eltwise", ["a", "b"], ["sum"],
                  {"operation": "SUM", "coeff": (1.0, -0.5), "activation": "ReLU",
                   "negative_slope": 0.0}),
             conv("c", "data", "c"),
             Node("cat", "Concat", ["sum", "c"], ["cat"], {"axis": 1}),
             Node("pool", "Pooling", ["cat"], ["pool"], {"method": "MAX", "kernel": (2, 2),
                                                         "stride": (2, 2)}),
             conv("sig", "pool", "sig", "Sigmoid"),
             Node("fc", "InnerProduct", ["pool"], ["fc"], {"num_output": 5},
                  ["fc.w", "fc.b"])]
    inits = {}
    for n in ("a", "b", "c"):
        inits[f"{n}.w"], inits[f"{n}.b"] = w(8, 3, 3, 3), w(8)
    inits["sig.w"], inits["sig.b"] = w(8, 16, 3, 3), w(8)
    inits["fc.w"], inits["fc.b"] = w(5, 16 * 4 * 4), w(5)
    g = Graph("branchy", [TensorInfo("data", (1, 3, 8, 8))], nodes, ["fc", "sig"], inits)
    g.infer_shapes()
    return g


def test_branchy_graph_placement_and_accuracy():
    g = _branchy_graph()
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    ranges = collect_ranges(g, samples, "minmax", progress=False)
    q, decisions = quantize_int8(g, ranges)
    assert decisions["sig"] == "fused Sigmoid has no int8 form"
    for name in ("a", "b", "sum", "c", "cat", "pool", "fc"):
        assert decisions[name] == "int8", (name, decisions[name])
    # one Quantize for the shared input, a Dequantize for the float Sigmoid conv and outputs
    assert [n.name for n in q.nodes if n.op_type == "Quantize"] == ["data:quantize"]
    assert {n.name for n in q.nodes if n.op_type == "Dequantize"} == {"pool:dequantize",
                                                                      "fc:dequantize"}
    assert q.output_names == ["fc", "sig"]
    for i in range(4):
        f = reference.run(g, samples[i:i + 1])
        r = reference.run(q, samples[i:i + 1])
        for t in ("fc", "sig"):
            err = np.abs(r[t] - f[t]).max() / np.abs(f[t]).max()
            assert err < 0.06, (t, err)


def test_fp16_weights():
    g = _branchy_graph()
    g.initializers["a.w"] = g.initializers["a.w"].copy()
    g.initializers["a.w"][0, 0, 0, 0] = 1e6        # not representable in float16
    h, kept = to_fp16(g)
    assert kept == ["a.w"]
    assert h.initializers["b.w"].dtype == np.float16
    assert np.array_equal(h.initializers["b.w"], g.initializers["b.w"].astype(np.float16))
