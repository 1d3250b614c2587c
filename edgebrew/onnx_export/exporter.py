"""The export driver: source -> IR graph -> (optimizer) -> ONNX nodes per IR node -> checked,
shape-inferred ModelProto -> file written atomically.

Design notes:

* One mapping function per IR op type (``registry.MAPPERS``, filled by ``ops/``); this driver
  knows no op. Unknown op types and unexpected attribute values stop the export with an error that
  names the layer.
* Tensor names are the IR's (Caffe top names; ``blob@layer`` for earlier values of an in-place
  blob), initializer names the IR's weight names, and the first ONNX node of each layer is named
  after the layer. Initializers are not graph inputs (so onnxruntime may fold and fuse them).
* Batch: the IR's shapes are inferred at batch 1 and 2 to learn which axes of each tensor scale
  with the batch. Reshape targets put -1 there, so they are right at any batch size; with
  ``dynamic_batch`` the inputs' batch axis is the symbol ``N``.
* fp32 only for now. int8 (QDQ) export is to wrap, per op, the inputs and weights a mapper reads
  (``ExportContext.weight`` and the node's inputs) with QuantizeLinear/DequantizeLinear from the
  bundle's quantization parameters: one place in the context, no change to the op mappings.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import EdgebrewError
from ..ir import Graph, TensorInfo
from .context import ExportContext, OnnxExportError
from .metadata import metadata_for_graph, metadata_props

MIN_OPSET = 13
DETECTION_MODES = ("exact", "inputs")
_MAX_PROTO_BYTES = 2 ** 31 - 1


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnx.shape_inference  # noqa: F401
    except ImportError:
        raise EdgebrewError("ONNX export needs the 'onnx' package: pip install 'edgebrew[onnx]' "
                            "(or pip install onnx)") from None
    return onnx


def export_onnx(source, path, *, opset: int = 17, optimized: bool = True,
                dynamic_batch: bool = False, inputs=None, detection_output: str = "exact") -> Path:
    """Export a model to an ONNX file and return its path.

    ``source``: a Graph (with weights), a Bundle, a ``.brew`` path, or a ``(prototxt,
    caffemodel)`` tuple (``inputs={name: shape}`` then supplies or overrides input shapes, as in
    ``load_caffe``). ``opset``: 13 or later. ``optimized``: run edgebrew's graph optimizer first
    (when this build has one). ``dynamic_batch``: the batch axis is symbolic. ``detection_output``:
    "exact" exports DetectionOutput as an exact ONNX subgraph (refused, naming the layer, where
    that is impossible); "inputs" exports the net up to DetectionOutput's inputs instead.

    The file is written to a temporary file in the same folder and renamed: a failed export
    leaves nothing at ``path``.
    """
    model = build_model(source, opset=opset, optimized=optimized, dynamic_batch=dynamic_batch,
                        inputs=inputs, detection_output=detection_output)
    return save_model(model, path)


def build_model(source, *, opset: int = 17, optimized: bool = True, dynamic_batch: bool = False,
                inputs=None, detection_output: str = "exact"):
    """Like ``export_onnx`` but returns the ``onnx.ModelProto`` without writing it."""
    onnx = _require_onnx()
    from onnx import helper
    from . import ops  # noqa: F401  (registers the mappings)
    from .registry import MAPPERS
    from .. import __version__

    max_opset = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset:
        raise EdgebrewError(f"ONNX export: opset {opset!r} is not supported: use {MIN_OPSET} to "
                            f"{max_opset} (the installed onnx {onnx.__version__} knows up to "
                            f"{max_opset})")
    if detection_output not in DETECTION_MODES:
        raise EdgebrewError(f"ONNX export: detection_output must be one of {DETECTION_MODES}, "
                            f"got {detection_output!r}")
    graph, meta = resolve_source(source, inputs)
    status = "off"
    quantized = graph.is_quantized
    if quantized:              # an int8 bundle was optimized before it was quantized
        graph, status = copy_graph(graph), "applied before quantization"
    elif optimized:
        graph, status = _optimize(graph)
    if detection_output == "inputs":
        graph = _cut_at_detection(graph)
    if not graph.shapes:
        graph.infer_shapes()
    batch_axes = _batch_axes(graph, dynamic_batch)

    ctx = ExportContext(graph, opset, batch_axes, dynamic_batch)
    for node in graph.nodes:
        mapping = MAPPERS.get(node.op_type)
        ctx.layer = node
        if mapping is None:
            raise ctx.error(f"no ONNX mapping for op type '{node.op_type}'")
        _check_attrs(ctx, node, mapping)
        start = len(ctx.nodes)
        if quantized:
            export_qdq_node(ctx, node, mapping)
        else:
            mapping.fn(ctx, node)
        made = {o for n in ctx.nodes[start:] for o in n.output}
        missing = [t for t in node.outputs if t not in made]
        if missing:
            raise ctx.error(f"internal: the ONNX mapping did not produce {missing}")
    ctx.layer = None
    if sum(len(t.raw_data) for t in ctx.initializers.values()) > _MAX_PROTO_BYTES - (1 << 24):
        raise EdgebrewError(f"ONNX export: '{graph.name}' has over 2 GiB of weights, the limit "
                            "of a single ONNX protobuf file")

    det_outputs = {t for n in graph.nodes if n.op_type == "DetectionOutput" for t in n.outputs}
    float_type = helper.np_dtype_to_tensor_dtype(np.dtype(np.float32))
    g_inputs = [helper.make_tensor_value_info(t.name, float_type,
                                              ["N"] + list(t.shape[1:]) if dynamic_batch
                                              else list(t.shape))
                for t in graph.inputs]
    g_outputs = [helper.make_tensor_value_info(t, float_type, _output_dims(
        graph, batch_axes, t, det_outputs, dynamic_batch)) for t in graph.output_names]
    name = meta.model_name or graph.name or "edgebrew_model"
    value_info = _infer_shapes(onnx, helper, ctx, name, g_inputs, g_outputs, opset)
    onnx_graph = helper.make_graph(ctx.nodes, name, g_inputs, g_outputs,
                                   initializer=list(ctx.initializers.values()),
                                   value_info=value_info)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="edgebrew",
                              producer_version=__version__,
                              doc_string=f"{name}: exported by edgebrew {__version__}"
                                         + (f" from {meta.source_prototxt}"
                                            if meta.source_prototxt else ""))
    model.ir_version = _ir_version(helper, opsets)
    options = {"opset": opset, "dynamic_batch": bool(dynamic_batch), "optimizer": status,
               "detection_output": detection_output,
               "precision": "int8 (QDQ)" if quantized else "fp32"}
    helper.set_model_props(model, metadata_props(meta, options))
    _check_inferred_shapes(model, graph, batch_axes, det_outputs, dynamic_batch)
    return model


def _infer_shapes(onnx, helper, ctx, name, g_inputs, g_outputs, opset):
    """ONNX shape inference (strict) and the checker, run on a skeleton of the model whose
    large weights are typed placeholders (so the weights' bytes are not serialized and parsed
    twice); returns the inferred value_info for the real model."""
    small, placeholders = [], []
    for init in ctx.initializers.values():
        if init.data_type == onnx.TensorProto.FLOAT and len(init.raw_data) > 1 << 16:
            placeholders.append(helper.make_tensor_value_info(init.name, init.data_type,
                                                              list(init.dims)))
        else:
            small.append(init)
    skeleton = helper.make_model(
        helper.make_graph(ctx.nodes, name, list(g_inputs) + placeholders, g_outputs,
                          initializer=small),
        opset_imports=[helper.make_opsetid("", opset)])
    skeleton.ir_version = _ir_version(helper, list(skeleton.opset_import))
    try:
        onnx.checker.check_model(skeleton)
        inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True,
                                                     strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise OnnxExportError(f"ONNX export of '{name}': internal error, the model does not "
                              f"validate: {e}") from None
    return list(inferred.graph.value_info)


def save_model(model, path) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, then rename."""
    path = Path(path)
    data = model.SerializeToString()
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise EdgebrewError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise EdgebrewError(f"{path}: cannot write: {e.strerror}") from None
        raise
    return path


# ------------------------------------------------------------------------------ sources
def resolve_source(source, inputs=None):
    """(IR graph with weights and shapes, Metadata) of any source export_onnx accepts."""
    from ..bundle import Bundle
    if inputs is not None and not isinstance(source, (tuple, list)):
        raise EdgebrewError("ONNX export: inputs= applies to a (prototxt, caffemodel) source only")
    if isinstance(source, Graph):
        graph, meta = source, metadata_for_graph(source)
    elif isinstance(source, Bundle):
        graph, meta = source.graph, source.metadata
    elif isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise EdgebrewError("ONNX export: a Caffe source is a (prototxt, caffemodel) pair, "
                                f"got {len(source)} item(s)")
        from ..importer import load_caffe
        from ..importer.zoo_readme import sha1_of
        prototxt, caffemodel = source
        graph = load_caffe(prototxt, caffemodel, inputs=inputs)
        meta = metadata_for_graph(graph)
        if not meta.source_sha1:
            meta.source_sha1 = sha1_of(caffemodel)
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.suffix in (".prototxt", ".pt", ".caffemodel"):
            raise EdgebrewError(f"ONNX export: {p} is a Caffe file; pass (prototxt, caffemodel) "
                                "together, or a .brew bundle")
        bundle = Bundle.load(p)
        graph, meta = bundle.graph, bundle.metadata
    else:
        raise EdgebrewError(f"ONNX export: cannot export a {type(source).__name__}; pass a "
                            "Graph, a Bundle, a .brew path or a (prototxt, caffemodel) pair")
    if not graph.has_weights:
        raise EdgebrewError(f"ONNX export: graph '{graph.name}' has no weights: load it with a "
                            "caffemodel")
    if not graph.shapes:
        graph.infer_shapes()
    return graph, meta


def export_qdq_node(ctx, node, mapping):
    """One node of an int8 graph in ONNX's QDQ form: the op's float computation writes
    ``t/float`` for each int8 output t, which ``quantize_pair`` turns into QuantizeLinear ->
    DequantizeLinear -> ``t``; consumers read the float ``t`` and onnxruntime fuses
    DQ -> op -> Q into its int8 kernels. int8 weights come through DequantizeLinear
    (``ExportContext.weight``); Quantize / Dequantize have their own mappings."""
    from .ops.quantize import quantize_pair
    graph = ctx.graph
    int8_out = [t for t in node.outputs if graph.dtypes.get(t) == np.dtype(np.int8)]
    if node.op_type in ("Quantize", "Dequantize") or not int8_out:
        mapping.fn(ctx, node)
        return
    exported = node.copy()
    exported.outputs = [f"{t}/float" if t in int8_out else t for t in node.outputs]
    for t in int8_out:
        graph.shapes[f"{t}/float"] = graph.shapes[t]
    mapping.fn(ctx, exported)
    for t in int8_out:
        quantize_pair(ctx, f"{t}/float", t)


def copy_graph(graph: Graph) -> Graph:
    """A copy whose nodes and lists may be changed freely (weight arrays are shared)."""
    g = Graph(graph.name, list(graph.inputs),
              [copy.copy(n) for n in graph.nodes], list(graph.output_names),
              dict(graph.initializers))
    for n in g.nodes:
        for f in dataclasses.fields(n):
            v = getattr(n, f.name)
            if isinstance(v, (list, dict)):
                setattr(n, f.name, copy.copy(v))
        for k, v in vars(n).items():     # attributes added outside the dataclass (e.g. fused)
            if isinstance(v, (list, dict)):
                setattr(n, k, copy.copy(v))
    g.shapes = dict(graph.shapes)
    g.dtypes, g.quant = dict(graph.dtypes), dict(graph.quant)
    g.notes = list(getattr(graph, "notes", []))
    if hasattr(graph, "source"):
        g.source = dict(graph.source)
    return g


def _optimize(graph):
    """Run edgebrew's optimizer when this build has one: (graph, "applied" | "unavailable")."""
    from .. import optimizer
    optimize = getattr(optimizer, "optimize", None)
    if optimize is None:
        return graph, "unavailable"
    result = optimize(copy_graph(graph))
    optimized = result[0] if isinstance(result, tuple) else result
    if not optimized.shapes:
        optimized.infer_shapes()
    return optimized, "applied"


def _cut_at_detection(graph: Graph) -> Graph:
    """The graph without its DetectionOutput layers, their inputs becoming graph outputs."""
    det = [n for n in graph.nodes if n.op_type == "DetectionOutput"]
    if not det:
        return graph
    g = copy_graph(graph)
    g.nodes = [n for n in g.nodes if n.op_type != "DetectionOutput"]
    replaced = {t: list(n.inputs) for n in det for t in n.outputs}
    outs = []
    for t in graph.output_names:
        outs.extend(replaced.get(t, [t]))
    g.output_names = list(dict.fromkeys(outs))
    used = {t for n in g.nodes for t in n.inputs}
    if any(t in used for t in replaced):
        raise EdgebrewError("ONNX export: a DetectionOutput's result feeds other layers; it "
                            "cannot be cut away")
    g.shapes = {}
    g.infer_shapes()
    return g


# ------------------------------------------------------------------------------ checks
def _check_attrs(ctx, node, mapping):
    declared = {a.name: a.default for a in node.op.attrs}
    for key, value in node.attrs.items():
        if key in mapping.attrs:
            continue
        default = declared.get(key)
        if value is None or value == default or (value in ((), []) and default in ((), [])):
            continue
        raise ctx.error(f"attribute {key}={value!r} is not supported by the ONNX export")


def _shapes_at_batch(graph: Graph, batch: int):
    g = Graph(graph.name, [TensorInfo(t.name, (batch,) + tuple(t.shape[1:]), t.dtype)
                           for t in graph.inputs], graph.nodes, graph.output_names,
              graph.initializers)
    return g.infer_shapes()


def _batch_axes(graph: Graph, dynamic: bool):
    """{tensor: axes whose size scales with the batch}, from shapes at batch 1 and 2."""
    if any(len(t.shape) == 0 for t in graph.inputs):
        if dynamic:
            raise EdgebrewError("ONNX export with dynamic_batch: an input has no batch axis")
        return {}
    try:
        one, two = _shapes_at_batch(graph, 1), _shapes_at_batch(graph, 2)
    except EdgebrewError as e:
        if dynamic:
            raise OnnxExportError(f"ONNX export with dynamic_batch: the net does not fit every "
                                  f"batch size: {e}") from None
        return {}
    return {t: frozenset(i for i, (a, b) in enumerate(zip(s, two[t])) if a != b)
            for t, s in one.items()}


def _output_dims(graph, batch_axes, t, det_outputs, dynamic):
    if t in det_outputs:
        return [1, 1, "num_detections", 7]
    shape = list(graph.shapes[t])
    if not dynamic:
        return shape
    axes = batch_axes.get(t, frozenset())
    for a in axes:
        shape[a] = "N" if len(axes) == 1 and a == 0 and graph.inputs and \
            shape[a] == graph.inputs[0].shape[0] else None
    return shape


def _check_inferred_shapes(model, graph, batch_axes, det_outputs, dynamic):
    """Every IR tensor's shape as ONNX inferred it must be the IR's (batch axes aside when
    dynamic): a cheap guard against a wrong mapping."""
    downstream = set(det_outputs)
    for n in graph.nodes:
        if any(t in downstream for t in n.inputs):
            downstream.update(n.outputs)
    infos = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.output)}
    for t, want in graph.shapes.items():
        vi = infos.get(t)
        if vi is None or t in downstream or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        skip = batch_axes.get(t, frozenset()) if dynamic else frozenset()
        if len(dims) != len(want):
            raise OnnxExportError(f"ONNX export: internal error: tensor '{t}' has rank "
                                  f"{len(dims)} in ONNX, the IR's shape is {tuple(want)}")
        for i, (d, w) in enumerate(zip(dims, want)):
            if i in skip or not d.HasField("dim_value"):
                continue
            if d.dim_value != w:
                raise OnnxExportError(f"ONNX export: internal error: tensor '{t}' has shape "
                                      f"{[x.dim_value or x.dim_param for x in dims]} in ONNX, "
                                      f"the IR's shape is {tuple(want)}")


def _ir_version(helper, opsets) -> int:
    """The oldest IR version that carries this opset, so older runtimes load the file."""
    try:
        return int(helper.find_min_ir_version_for(opsets))
    except Exception:      # pragma: no cover - older onnx without the helper
        import onnx
        return onnx.IR_VERSION


def describe(model) -> str:
    """One line on an exported model (for the CLI)."""
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    top = ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:6])
    props = {p.key: p.value for p in model.metadata_props}
    opts = json.loads(props.get("edgebrew_export", "{}"))
    return (f"{len(model.graph.node)} ONNX nodes ({top}), opset {opts.get('opset')}, "
            f"optimizer {opts.get('optimizer')}")
