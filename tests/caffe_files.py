"""Writing Caffe files for tests: random-weight caffemodels (as ../shared/golden/randnet.py does)
and one-layer prototxts, so OpenCV DNN and edgebrew can read the very same files."""
from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from edgebrew.importer.proto import caffe_pb2


def random_weights(graph, seed=0) -> dict[str, list[np.ndarray]]:
    """Random blobs for every layer of ``graph`` by layer name (an empty list for layers
    without weights, so the caffemodel names every layer, as Caffe writes them).

    Conv/IP ~ N(0, sqrt(2 / fan_in)); biases U[-0.1, 0.1]; BatchNorm statistics non-trivial
    (mean N(0, 0.1), variance U[0.5, 1.5], moving-average factor U[0.5, 2]) so folding bugs show.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for node in graph.nodes:
        shapes = graph.weight_shapes(node)
        names = node.op.weight_names(node)
        blobs = []
        for slot, shape in zip(names, shapes):
            n = int(np.prod(shape))
            if node.op_type == "BatchNorm":
                v = {"mean": lambda: rng.normal(0, 0.1, n),
                     "variance": lambda: rng.uniform(0.5, 1.5, n),
                     }.get(slot, lambda: rng.uniform(0.5, 2.0, n))()
            elif slot == "bias":
                v = rng.uniform(-0.1, 0.1, n)
            elif node.op_type in ("Scale", "Normalize"):
                v = rng.uniform(0.5, 1.5, n)
            elif node.op_type == "PReLU":
                v = rng.uniform(0.05, 0.3, n)
            else:
                fan_in = n // shape[0] if node.op_type != "Deconvolution" else n // shape[1]
                v = rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), n)
            blobs.append(v.astype(np.float32).reshape(shape))
        out[node.name] = blobs
    return out


def write_caffemodel(path, layers: dict[str, list[np.ndarray]], types: dict[str, str] = None,
                     name="test"):
    """A V2 caffemodel holding ``layers`` ({layer name: [blobs]}) with modern BlobShape dims."""
    net = caffe_pb2.NetParameter(name=name)
    for lname, blobs in layers.items():
        layer = net.layer.add(name=lname, type=(types or {}).get(lname, ""))
        for a in blobs:
            b = layer.blobs.add()
            if np.ndim(a) == 0:   # 0-d blobs (shared PReLU/Normalize scale) in legacy 1x1x1x1
                b.num = b.channels = b.height = b.width = 1   # dims, which OpenCV reads too
            else:
                b.shape.dim.extend(a.shape)
            b.data.extend(np.asarray(a, np.float32).ravel().tolist())
    with open(path, "wb") as f:
        f.write(net.SerializeToString())


def attach(graph, weights: dict[str, list[np.ndarray]]):
    """Put blobs by layer name into the graph's initializers (as load_caffe would)."""
    for node in graph.nodes:
        for wname, arr in zip(node.weights, weights.get(node.name, [])):
            graph.initializers[wname] = arr
    return graph


def one_layer_prototxt(layer_text: str, input_shapes, bottoms=None) -> str:
    """A deploy prototxt: Input layers ``in0``, ``in1``... feeding one layer given as text."""
    net = caffe_pb2.NetParameter(name="one_layer")
    for i, shape in enumerate(input_shapes):
        l = net.layer.add(name=f"in{i}", type="Input")
        l.top.append(f"in{i}")
        l.input_param.shape.add().dim.extend(shape)
    layer = net.layer.add()
    text_format.Parse(layer_text, layer)
    if not len(layer.bottom):
        layer.bottom.extend(bottoms or [f"in{i}" for i in range(len(input_shapes))])
    return text_format.MessageToString(net)
