"""load_caffe: a Caffe deploy (or train_val) prototxt and optional caffemodel -> IR Graph.

The steps mirror what ``caffe.Net(prototxt, weights, caffe.TEST)`` does: parse, upgrade legacy
formats, keep the TEST-phase layers, resolve in-place layers and inputs, then copy the weights
by layer name. Data and loss layers of a train_val net are dropped (with a note in
``graph.notes``); layers that cannot run at deployment are errors that name the layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import (EdgebrewError, GraphError, ModelFormatError, ShapeError,
                      UnsupportedLayerError, WeightsError)
from ..ir import Graph, Node, TensorInfo
from ..ir.ops import OPS
from .layers import MAPPERS
from .parsing import blob_to_array, read_caffemodel, read_prototxt
from .phase_rules import NetState
from .upgrade import upgrade_net
from .zoo_readme import check_weights_sha1, read_zoo_readme

DATA_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData",
              "AnnotatedData", "VideoData"}
LOSS_TYPES = {"SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
              "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
              "Accuracy", "MultiBoxLoss", "DetectionEvaluate", "SmoothL1Loss"}
SINK_TYPES = {"Silence", "HDF5Output"}

InputShapes = Mapping[str, Sequence[int]]


def load_caffe(prototxt, caffemodel=None, *, inputs: InputShapes | None = None) -> Graph:
    """Import a Caffe net. ``inputs={name: (N, C, H, W)}`` supplies or overrides input shapes."""
    prototxt = Path(prototxt)
    src = str(prototxt)
    overrides = _check_overrides(inputs)
    net = read_prototxt(prototxt)
    layers = upgrade_net(net, src)
    state = NetState.for_deploy(net)
    layers = [l for l in layers if state.includes(l, src)]

    graph = _build_graph(net, layers, overrides, src)
    graph.infer_shapes()
    graph.source = {"prototxt": src}
    readme = read_zoo_readme(prototxt) if prototxt.parent.is_dir() else None
    if readme and readme.get("name"):
        graph.name = str(readme["name"])
    if caffemodel is not None:
        sha1 = check_weights_sha1(readme, caffemodel) if readme else None
        _attach_weights(graph, read_caffemodel(caffemodel), str(caffemodel))
        graph.source.update(caffemodel=str(caffemodel), caffemodel_sha1=sha1)
    return graph


def _check_overrides(inputs):
    out = {}
    for name, shape in (inputs or {}).items():
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ShapeError(f"input '{name}': shape {shape!r} is not a list of integers") \
                from None
        if not dims or any(d <= 0 for d in dims):
            raise ShapeError(f"input '{name}': shape {dims} must have positive dimensions")
        out[str(name)] = dims
    return out


def _declared_inputs(net, src):
    """Inputs declared by the net-level ``input`` + ``input_shape`` / ``input_dim`` fields."""
    names = list(net.input)
    if not names:
        return {}
    if len(net.input_shape):
        if len(net.input_shape) != len(names):
            raise ModelFormatError(f"{src}: {len(names)} inputs but {len(net.input_shape)} "
                                   "input_shape entries")
        return {n: tuple(s.dim) for n, s in zip(names, net.input_shape)}
    dims = list(net.input_dim)
    if len(dims) != 4 * len(names):
        raise ModelFormatError(f"{src}: {len(names)} inputs need {4 * len(names)} input_dim "
                               f"values, got {len(dims)}")
    return {n: tuple(dims[4 * i:4 * i + 4]) for i, n in enumerate(names)}


class _Builder:
    """Walks the filtered layers in order, naming tensors as Caffe's blobs."""

    def __init__(self, overrides, src):
        self.src = src
        self.overrides = dict(overrides)
        self.used_overrides = set()
        self.inputs: list[TensorInfo] = []
        self.nodes: list[Node] = []
        self.notes: list[str] = []
        self.version: dict[str, str] = {}      # blob name -> tensor holding its latest value
        self.unconsumed: dict[str, None] = {}  # Caffe's available blobs, in order
        self.unknown_data: dict[str, str] = {}  # data top with no shape -> "layer (Type)"
        self.data_tops: set[str] = set()
        self.silenced: set[str] = set()
        self.param_owner: dict[str, str] = {}   # shared param name -> initializer name

    def add_input(self, name, shape, origin):
        if name in self.overrides:
            shape = self.overrides[name]
            self.used_overrides.add(name)
        if shape is None:
            self.unknown_data[name] = origin
            return
        shape = tuple(int(d) for d in shape)
        if not shape or any(d <= 0 for d in shape):
            raise ShapeError(f"{self.src}: input '{name}' ({origin}) has shape {shape}; pass "
                             f"inputs={{'{name}': (N, C, H, W)}} (CLI: --input {name}:N,C,H,W)")
        if name in self.version:
            raise GraphError(f"{self.src}: input '{name}' ({origin}) is declared twice")
        self.inputs.append(TensorInfo(name, shape))
        self.version[name] = name
        self.unconsumed[name] = None

    def read(self, layer, blob):
        if blob in self.unknown_data:
            raise ShapeError(
                f"{self.src}: layer '{layer.name}' ({layer.type}) reads '{blob}', produced by "
                f"the data layer {self.unknown_data[blob]} whose shape is unknown: pass "
                f"inputs={{'{blob}': (N, C, H, W)}} (CLI: --input {blob}:N,C,H,W)")
        if blob not in self.version:
            raise GraphError(f"{self.src}: layer '{layer.name}' ({layer.type}): bottom '{blob}' "
                             "is not produced by any earlier layer or input")
        self.unconsumed.pop(blob, None)
        return self.version[blob]

    def data_layer(self, layer):
        what = f"'{layer.name}' ({layer.type})"
        shapes = _data_layer_shapes(layer)
        for i, top in enumerate(layer.top):
            self.data_tops.add(top)
            self.add_input(top, shapes[i] if i < len(shapes) else None, what)
        kept = [t for t in layer.top if t in self.version]
        self.notes.append(f"data layer {what} dropped for deployment" +
                          (f"; {', '.join(kept)} became input(s)" if kept else ""))

    def layer(self, layer):
        t = layer.type
        if t == "Input":
            p = layer.input_param
            if len(p.shape) not in (1, len(layer.top)):
                raise ModelFormatError(f"{self.src}: Input layer '{layer.name}' has "
                                       f"{len(layer.top)} tops but {len(p.shape)} shapes")
            for i, top in enumerate(layer.top):
                shape = tuple(p.shape[i if len(p.shape) > 1 else 0].dim) if len(p.shape) else None
                self.add_input(top, shape, f"'{layer.name}' (Input)")
            return
        if t in DATA_TYPES or (t == "Python" and not len(layer.bottom)):
            return self.data_layer(layer)
        if t in LOSS_TYPES:
            if any(b in self.data_tops for b in layer.bottom):
                # What the loss read stays unconsumed: it becomes an output, as in a deploy net.
                self.notes.append(f"loss/accuracy layer '{layer.name}' ({t}) dropped for "
                                  "deployment")
                return
            raise UnsupportedLayerError(f"{self.src}: layer '{layer.name}' ({t}) is a loss "
                                        "layer, which a deploy net cannot run; remove it")
        if t in SINK_TYPES:
            self.silenced.update(layer.bottom)
            for b in layer.bottom:
                self.unconsumed.pop(b, None)
            self.notes.append(f"layer '{layer.name}' ({t}) dropped: it has no output")
            return
        if t == "Python":
            raise UnsupportedLayerError(f"{self.src}: layer '{layer.name}' (Python) runs user "
                                        "Python code, which a deploy runtime cannot run")
        if t not in OPS or t not in MAPPERS:
            raise UnsupportedLayerError(f"{self.src}: layer '{layer.name}' has unknown or "
                                        f"unsupported type '{t}'")
        if not len(layer.top):
            raise GraphError(f"{self.src}: layer '{layer.name}' ({t}) has no top")
        try:
            attrs = MAPPERS[t](layer)
        except EdgebrewError as e:
            raise type(e)(f"{self.src}: {e}") from None
        input_names = {t.name for t in self.inputs}
        tops = []
        for top in layer.top:
            tensor = top
            if top in self.version:
                if top not in layer.bottom:
                    raise GraphError(f"{self.src}: layer '{layer.name}' ({t}): top '{top}' is "
                                     "already produced by an earlier layer (only in-place "
                                     "layers may write a blob again)")
                if self.version[top] in input_names:
                    tensor = f"{top}@{layer.name}"   # a fed input keeps its name
                else:
                    self._rename_version(top)    # the old value gets a name of its own
            tops.append(tensor)
        bottoms = [self.read(layer, b) for b in layer.bottom]
        op = OPS[t]
        node = Node(layer.name, t, bottoms, tops, op.normalize_attrs(layer.name, attrs), [],
                    param_mults=[(p.lr_mult, p.decay_mult) for p in layer.param])
        node.weights = self._weight_names(layer, node, op)
        for top, tensor in zip(layer.top, tops):
            self.version[top] = tensor
            self.unconsumed[top] = None
        self.nodes.append(node)

    def _rename_version(self, blob):
        """Blob ``blob`` is about to be overwritten in place: give its current value the name
        ``blob@writer`` (the layer that wrote it), everywhere it is used so far."""
        old = self.version[blob]
        writer = next(n for n in reversed(self.nodes) if old in n.outputs)
        new = f"{blob}@{writer.name}"
        writer.outputs = [new if o == old else o for o in writer.outputs]
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.version[blob] = new

    def _weight_names(self, layer, node, op):
        names = []
        for i, slot in enumerate(op.weight_names(node)):
            shared = layer.param[i].name if i < len(layer.param) else ""
            if shared:
                names.append(self.param_owner.setdefault(shared, f"{layer.name}.{slot}"))
            else:
                names.append(f"{layer.name}.{slot}")
        return names


def _data_layer_shapes(layer):
    """Shapes a data layer states itself (DummyData, MemoryData); others need ``inputs=``."""
    if layer.type == "DummyData":
        p = layer.dummy_data_param
        if len(p.shape):
            return [tuple(s.dim) for s in p.shape] if len(p.shape) > 1 else \
                [tuple(p.shape[0].dim)] * len(layer.top)
        if len(p.num):
            return [(p.num[i], p.channels[i], p.height[i], p.width[i])
                    for i in range(min(len(p.num), len(p.channels), len(p.height),
                                       len(p.width)))]
    if layer.type == "MemoryData":
        p = layer.memory_data_param
        return [(p.batch_size, p.channels, p.height, p.width)]
    return []


def _build_graph(net, layers, overrides, src) -> Graph:
    b = _Builder(overrides, src)
    for name, shape in _declared_inputs(net, src).items():
        b.add_input(name, shape, "the net's 'input' field")
    for layer in layers:
        b.layer(layer)
    unused = set(b.overrides) - b.used_overrides
    if unused:
        known = [t.name for t in b.inputs] + list(b.unknown_data)
        raise ShapeError(f"{src}: inputs={sorted(unused)} name no input of the net; its inputs "
                         f"are {known}")
    if not b.inputs:
        raise ModelFormatError(f"{src}: the net declares no input (no Input layer, 'input' "
                               "field or data layer)")
    if not b.nodes:
        raise ModelFormatError(f"{src}: the net has no layers to run")
    outputs = [b.version[blob] for blob in b.unconsumed
               if blob not in b.silenced and blob not in b.unknown_data
               and b.version[blob] not in {t.name for t in b.inputs}]
    g = Graph(net.name or Path(src).stem, b.inputs, b.nodes, outputs)
    g.notes = b.notes
    return g


def _weights_by_layer(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for l in model.layer:
        out.setdefault(l.name, list(l.blobs))
    for v1 in model.layers:
        if v1.HasField("layer"):
            out.setdefault(v1.layer.name, list(v1.layer.blobs))
        else:
            out.setdefault(v1.name, list(v1.blobs))
    return out


def _legacy_matches(legacy_shape, expected) -> bool:
    """Caffe accepts a legacy num/channels/height/width blob for a layer blob of up to 4 axes
    when the layer's shape, padded with leading 1s to 4 axes, equals it."""
    if len(expected) > 4:
        return False
    return tuple(legacy_shape) == (1,) * (4 - len(expected)) + tuple(expected)


def _attach_weights(graph: Graph, model, src: str) -> None:
    blobs_of = _weights_by_layer(model)
    for node in graph.nodes:
        expected = graph.weight_shapes(node)
        if not node.weights:
            continue
        if all(w in graph.initializers for w in node.weights):
            continue           # every blob shared with an earlier layer
        blobs = blobs_of.get(node.name)
        if not blobs:
            raise WeightsError(f"{src}: no weights for layer '{node.name}' ({node.op_type}); "
                               "is this the caffemodel for this prototxt?")
        if len(blobs) != len(node.weights):
            raise WeightsError(f"{src}: layer '{node.name}' ({node.op_type}) needs "
                               f"{len(node.weights)} blob(s) ({', '.join(node.op.weight_names(node))}),"
                               f" the caffemodel has {len(blobs)}")
        for i, (wname, blob, want) in enumerate(zip(node.weights, blobs, expected)):
            if wname in graph.initializers:
                continue
            arr, legacy = blob_to_array(blob, f"{src}: layer '{node.name}' blob {i}")
            if arr.shape != tuple(want):
                if legacy and _legacy_matches(arr.shape, want):
                    arr = arr.reshape(want)
                else:
                    raise WeightsError(
                        f"{src}: layer '{node.name}' ({node.op_type}) blob {i} "
                        f"({node.op.weight_names(node)[i]}) has shape {arr.shape}, the prototxt "
                        f"needs {tuple(want)}")
            graph.initializers[wname] = arr
