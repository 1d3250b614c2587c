"""Writing and reading the .brew file (schema: bundle.fbs) with the flatbuffers library.

Layout: [flatbuffer "EBRW"] [zero padding to 64] [weight segment], every weight buffer 64-byte
aligned in the file, so the C runtime can use a mapped file in place.
"""
from __future__ import annotations

import json
import math

import flatbuffers
import numpy as np

from ..errors import EdgebrewError
from ..ir import Graph, Node, TensorInfo
from ..ir.quant_params import QuantParams
from ..ir.ops import OPS
from .edgebrew_fb import (Attr as FbAttr, AttrKind, Buffer as FbBuffer, DType, Metadata as
                          FbMetadata, Model as FbModel, Op as FbOp, OpType, Preprocessing as
                          FbPreprocessing, Quantization as FbQuant, Tensor as FbTensor)
from .metadata import Metadata, Preprocessing

FORMAT_VERSION = 1
IDENTIFIER = b"EBRW"
ALIGN = 64

OP_CODES = {name: code for name, code in vars(OpType.OpType).items() if not name.startswith("_")}
OP_NAMES = {code: name for name, code in OP_CODES.items()}
_DTYPES = {np.dtype(np.float32): DType.DType.FLOAT32, np.dtype(np.float16): DType.DType.FLOAT16,
           np.dtype(np.int8): DType.DType.INT8, np.dtype(np.uint8): DType.DType.UINT8,
           np.dtype(np.int32): DType.DType.INT32}
_NP_DTYPES = {v: k for k, v in _DTYPES.items()}


class BundleFormatError(EdgebrewError):
    """A .brew file that is not a valid bundle."""


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ---------------------------------------------------------------------------------- writing
class _Writer:
    def __init__(self, graph: Graph, plan, metadata: Metadata):
        self.graph, self.plan, self.meta = graph, plan, metadata
        names = [t.name for t in graph.inputs]
        for n in graph.nodes:
            names += [t for t in n.outputs if t not in names]
        self.activations = names
        self.constants = list(dict.fromkeys(w for n in graph.nodes for w in n.weights))
        extra = ["__mean_image__"] if metadata.preprocessing.mean_image is not None else []
        self.index = {t: i for i, t in enumerate(self.activations + self.constants + extra)}
        self.blobs = [np.ascontiguousarray(graph.initializers[w]) for w in self.constants]
        if extra:
            self.blobs.append(np.ascontiguousarray(metadata.preprocessing.mean_image, np.float32))
        self.buffers, offset = [], 0
        for a in self.blobs:
            self.buffers.append((offset, a.nbytes))
            offset = _align(offset + a.nbytes)
        self.segment_size = offset

    def build(self, segment_offset: int) -> bytes:
        b = flatbuffers.Builder(1 << 16)
        tensors = [self._tensor(b, t) for t in self.activations]
        tensors += [self._tensor(b, w, buffer=i) for i, w in enumerate(self.constants)]
        if len(self.blobs) > len(self.constants):
            tensors.append(self._tensor(b, "__mean_image__", buffer=len(self.constants),
                                        shape=self.blobs[-1].shape))
        ops = [self._op(b, n) for n in self.graph.nodes]
        meta = self._metadata(b)
        tensors_v = _vector(b, FbModel.StartTensorsVector, tensors)
        ops_v = _vector(b, FbModel.StartOpsVector, ops)
        inputs_v = _ints(b, FbModel.StartInputsVector, [self.index[t.name] for t in self.graph.inputs], 4)
        outputs_v = _ints(b, FbModel.StartOutputsVector, [self.index[t] for t in self.graph.output_names], 4)
        FbModel.StartBuffersVector(b, len(self.buffers))
        for off, size in reversed(self.buffers):
            FbBuffer.CreateBuffer(b, off, size)
        buffers_v = b.EndVector()
        FbModel.Start(b)
        FbModel.AddFormatVersion(b, FORMAT_VERSION)
        FbModel.AddTensors(b, tensors_v)
        FbModel.AddOps(b, ops_v)
        FbModel.AddInputs(b, inputs_v)
        FbModel.AddOutputs(b, outputs_v)
        FbModel.AddBuffers(b, buffers_v)
        FbModel.AddArenaSize(b, self.plan.arena_bytes)
        FbModel.AddWeightSegmentOffset(b, segment_offset)
        FbModel.AddWeightSegmentSize(b, self.segment_size)
        FbModel.AddMetadata(b, meta)
        b.Finish(FbModel.End(b), file_identifier=IDENTIFIER)
        return bytes(b.Output())

    def _tensor(self, b, name, buffer=-1, shape=None):
        shape = shape if shape is not None else (self.graph.shapes[name] if buffer < 0
                                                 else self.graph.initializers[name].shape)
        dtype = self.graph.dtype_of(name) if buffer < 0 else self.blobs[buffer].dtype
        name_s = b.CreateString(name)
        shape_v = _ints(b, FbTensor.StartShapeVector, [int(d) for d in shape], 8)
        quant = self._quant(b, self.graph.quant[name]) if name in self.graph.quant else None
        FbTensor.Start(b)
        FbTensor.AddName(b, name_s)
        FbTensor.AddShape(b, shape_v)
        FbTensor.AddDtype(b, _DTYPES[dtype])
        FbTensor.AddBuffer(b, buffer)
        FbTensor.AddArenaOffset(b, self.plan.offsets[name] if buffer < 0 else -1)
        if quant is not None:
            FbTensor.AddQuant(b, quant)
        return FbTensor.End(b)

    @staticmethod
    def _quant(b, q):
        scale_v = _floats(b, FbQuant.StartScaleVector, [float(v) for v in q.scale], 4)
        zp_v = _ints(b, FbQuant.StartZeroPointVector, [int(v) for v in q.zero_point], 8)
        FbQuant.Start(b)
        FbQuant.AddScale(b, scale_v)
        FbQuant.AddZeroPoint(b, zp_v)
        FbQuant.AddAxis(b, q.axis)
        return FbQuant.End(b)

    def _op(self, b, node: Node):
        if node.op_type not in OP_CODES:
            raise EdgebrewError(f"layer '{node.name}': op type {node.op_type} has no bundle op code")
        attrs = [_attr(b, node, k, v) for k, v in node.attrs.items() if v is not None]
        name_s = b.CreateString(node.name)
        in_v = _ints(b, FbOp.StartInputsVector, [self.index[t] for t in node.inputs], 4)
        out_v = _ints(b, FbOp.StartOutputsVector, [self.index[t] for t in node.outputs], 4)
        w_v = _ints(b, FbOp.StartWeightsVector, [self.index[w] for w in node.weights], 4)
        attrs_v = _vector(b, FbOp.StartAttrsVector, attrs)
        fused = [b.CreateString(s) for s in getattr(node, "fused", [])]
        fused_v = _vector(b, FbOp.StartFusedVector, fused)
        mults = [float(v) for pair in getattr(node, "param_mults", []) for v in pair]
        mults_v = _floats(b, FbOp.StartParamMultsVector, mults, 4) if mults else None
        FbOp.Start(b)
        FbOp.AddName(b, name_s)
        FbOp.AddType(b, OP_CODES[node.op_type])
        FbOp.AddInputs(b, in_v)
        FbOp.AddOutputs(b, out_v)
        FbOp.AddWeights(b, w_v)
        FbOp.AddAttrs(b, attrs_v)
        FbOp.AddFused(b, fused_v)
        if mults_v is not None:
            FbOp.AddParamMults(b, mults_v)
        return FbOp.End(b)

    def _metadata(self, b):
        m, p = self.meta, self.meta.preprocessing
        strings = {k: b.CreateString(str(getattr(m, k) or "")) for k in
                   ("model_name", "source_prototxt", "source_caffemodel", "source_sha1",
                    "converter_version")}
        options = b.CreateString(json.dumps(m.converter_options, sort_keys=True))
        extra = b.CreateString(json.dumps(m.extra, sort_keys=True))
        labels = _vector(b, FbMetadata.StartLabelsVector, [b.CreateString(s) for s in m.labels])
        order = b.CreateString(p.channel_order)
        mean_v = _floats(b, FbPreprocessing.StartMeanVector, p.mean or [], 8)
        size_v = _ints(b, FbPreprocessing.StartInputSizeVector, list(p.input_size or ()), 4)
        FbPreprocessing.Start(b)
        FbPreprocessing.AddMean(b, mean_v)
        if p.mean_image is not None:
            FbPreprocessing.AddMeanFile(b, self.index["__mean_image__"])
        FbPreprocessing.AddScale(b, float(p.scale))
        FbPreprocessing.AddChannelOrder(b, order)
        FbPreprocessing.AddInputSize(b, size_v)
        FbPreprocessing.AddGrayscale(b, bool(p.grayscale))
        pre = FbPreprocessing.End(b)
        FbMetadata.Start(b)
        for k, s in strings.items():
            getattr(FbMetadata, "Add" + "".join(w.title() for w in k.split("_")))(b, s)
        FbMetadata.AddPreprocessing(b, pre)
        FbMetadata.AddLabels(b, labels)
        FbMetadata.AddConverterOptions(b, options)
        FbMetadata.AddExtra(b, extra)
        return FbMetadata.End(b)


def _vector(b, start, offsets):
    start(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _ints(b, start, values, width):
    start(b, len(values))
    prepend = b.PrependInt64 if width == 8 else b.PrependInt32
    for v in reversed(values):
        prepend(int(v))
    return b.EndVector()


def _floats(b, start, values, width=4):
    start(b, len(values))
    prepend = b.PrependFloat32 if width == 4 else b.PrependFloat64
    for v in reversed(values):
        prepend(float(v))
    return b.EndVector()


def _is_int(v):
    return isinstance(v, (bool, int, np.integer))


def _attr(b, node, key, value):
    """IR attribute -> Attr table: bool/int -> INT, float -> FLOAT, str -> STRING, sequences of
    ints -> INTS, sequences with a float -> FLOATS."""
    key_s = b.CreateString(key)
    s = ints = floats = None
    if isinstance(value, str):
        kind, s = AttrKind.AttrKind.STRING, b.CreateString(value)
    elif _is_int(value):
        kind = AttrKind.AttrKind.INT
    elif isinstance(value, (float, np.floating)):
        kind = AttrKind.AttrKind.FLOAT
    elif isinstance(value, (tuple, list, np.ndarray)):
        items = list(np.asarray(value).ravel().tolist()) if isinstance(value, np.ndarray) \
            else list(value)
        if all(_is_int(v) for v in items):
            kind, ints = AttrKind.AttrKind.INTS, _ints(b, FbAttr.StartIntsVector, items, 8)
        elif all(isinstance(v, (int, float, np.number)) for v in items):
            kind = AttrKind.AttrKind.FLOATS
            floats = _floats(b, FbAttr.StartFloatsVector, items, 8)
        else:
            raise EdgebrewError(f"layer '{node.name}': attribute {key}={value!r} cannot be stored")
    else:
        raise EdgebrewError(f"layer '{node.name}': attribute {key}={value!r} cannot be stored")
    FbAttr.Start(b)
    FbAttr.AddKey(b, key_s)
    FbAttr.AddKind(b, kind)
    if kind == AttrKind.AttrKind.INT:
        FbAttr.AddI(b, int(value))
    elif kind == AttrKind.AttrKind.FLOAT:
        FbAttr.AddF(b, float(value))
    elif ints is not None:
        FbAttr.AddInts(b, ints)
    elif floats is not None:
        FbAttr.AddFloats(b, floats)
    else:
        FbAttr.AddS(b, s)
    return FbAttr.End(b)


def write_bytes(graph: Graph, plan, metadata: Metadata) -> bytes:
    w = _Writer(graph, plan, metadata)
    # The segment offset is stored inside the flatbuffer, whose size it does not change (a
    # fixed-width scalar; the probe value is nonzero so the field is present in both builds).
    probe = len(w.build(1 << 62))
    offset = _align(probe)
    fb = w.build(offset)
    assert len(fb) == probe, "flatbuffer size changed between builds"
    out = bytearray(offset + w.segment_size)
    out[:len(fb)] = fb
    for (off, size), a in zip(w.buffers, w.blobs):
        out[offset + off: offset + off + size] = a.tobytes()
    return bytes(out)


# ---------------------------------------------------------------------------------- reading
def read_bytes(data, source="<bytes>"):
    """Parse a bundle into (Graph, arena offsets, arena size, Metadata). Arrays are views into
    ``data`` (zero-copy)."""
    data = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if len(data) < 8 or bytes(data[4:8]) != IDENTIFIER:
        raise BundleFormatError(f"{source}: not an edgebrew bundle (no 'EBRW' identifier)")
    try:
        return _read(data, source)
    except BundleFormatError:
        raise
    except Exception as e:  # the flatbuffers reader trusts offsets; any failure means corruption
        raise BundleFormatError(f"{source}: corrupted bundle ({type(e).__name__}: {e})") from None


def _read(data, source):
    m = FbModel.Model.GetRootAs(data, 0)
    if m.FormatVersion() != FORMAT_VERSION:
        raise BundleFormatError(f"{source}: bundle format version {m.FormatVersion()}, this "
                                f"edgebrew reads version {FORMAT_VERSION}")
    seg = m.WeightSegmentOffset()
    if seg % ALIGN or seg + m.WeightSegmentSize() > len(data):
        raise BundleFormatError(f"{source}: weight segment out of the file (truncated?)")
    buffers = [m.Buffers(i) for i in range(m.BuffersLength())]
    tensors, arrays, offsets, dtypes, quant = [], {}, {}, {}, {}
    for i in range(m.TensorsLength()):
        t = m.Tensors(i)
        name = t.Name().decode()
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(name)
        q = t.Quant()
        if q is not None:
            quant[name] = QuantParams(
                q.ScaleAsNumpy() if q.ScaleLength() else np.zeros(0, np.float32),
                q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(0, np.int64), q.Axis())
        if t.Buffer() >= 0:
            buf = buffers[t.Buffer()]
            dtype = _NP_DTYPES[t.Dtype()]
            start = seg + buf.Offset()
            if start + buf.Size() > len(data) or buf.Size() != math.prod(shape) * dtype.itemsize:
                raise BundleFormatError(f"{source}: buffer of tensor '{name}' is out of range")
            arrays[name] = np.frombuffer(data, dtype, math.prod(shape), start).reshape(shape)
        else:
            offsets[name] = (t.ArenaOffset(), shape)
            if t.Dtype() != DType.DType.FLOAT32:
                dtypes[name] = _NP_DTYPES[t.Dtype()]
    nodes = []
    for i in range(m.OpsLength()):
        op = m.Ops(i)
        ids = lambda n, get: [tensors[get(j)] for j in range(n)]  # noqa: E731
        attrs = {}
        for j in range(op.AttrsLength()):
            a = op.Attrs(j)
            attrs[a.Key().decode()] = _attr_value(a)
        node = Node(op.Name().decode(), OP_NAMES[op.Type()], ids(op.InputsLength(), op.Inputs),
                    ids(op.OutputsLength(), op.Outputs), attrs,
                    ids(op.WeightsLength(), op.Weights))
        node.fused = [op.Fused(j).decode() for j in range(op.FusedLength())]
        mults = [float(op.ParamMults(j)) for j in range(op.ParamMultsLength())]
        node.param_mults = [(mults[j], mults[j + 1]) for j in range(0, len(mults) - 1, 2)]
        nodes.append(node)
    inputs = [TensorInfo(tensors[m.Inputs(i)], offsets[tensors[m.Inputs(i)]][1])
              for i in range(m.InputsLength())]
    outputs = [tensors[m.Outputs(i)] for i in range(m.OutputsLength())]
    graph = Graph("", inputs, nodes, outputs,
                  {k: v for k, v in arrays.items() if k != "__mean_image__"})
    graph.shapes = {k: s for k, (_, s) in offsets.items()}
    graph.dtypes, graph.quant = dtypes, quant
    meta = _read_metadata(m.Metadata(), arrays)
    graph.name = meta.model_name
    for n in graph.nodes:
        op = OPS[n.op_type]
        n.attrs = op.normalize_attrs(n.name, n.attrs)   # attributes stored as None come back
        for a in op.attrs:                               # booleans travel as INT 0/1
            if isinstance(a.default, bool) and isinstance(n.attrs[a.name], int):
                n.attrs[a.name] = bool(n.attrs[a.name])
    return graph, {k: o for k, (o, _) in offsets.items()}, m.ArenaSize(), meta


def _attr_value(a):
    k = a.Kind()
    if k == AttrKind.AttrKind.INT:
        return a.I()
    if k == AttrKind.AttrKind.FLOAT:
        return a.F()
    if k == AttrKind.AttrKind.INTS:
        return tuple(int(v) for v in a.IntsAsNumpy()) if a.IntsLength() else ()
    if k == AttrKind.AttrKind.FLOATS:
        return tuple(float(v) for v in a.FloatsAsNumpy()) if a.FloatsLength() else ()
    return a.S().decode()


def _read_metadata(fm, arrays) -> Metadata:
    if fm is None:
        return Metadata()
    s = lambda v: v.decode() if v else ""  # noqa: E731
    p = fm.Preprocessing()
    pre = Preprocessing()
    if p is not None:
        pre = Preprocessing(
            mean=[float(v) for v in p.MeanAsNumpy()] if p.MeanLength() else None,
            mean_image=arrays.get("__mean_image__") if p.MeanFile() >= 0 else None,
            scale=float(p.Scale()), channel_order=s(p.ChannelOrder()) or "BGR",
            input_size=tuple(int(v) for v in p.InputSizeAsNumpy()) if p.InputSizeLength() else None,
            grayscale=bool(p.Grayscale()))
    return Metadata(
        model_name=s(fm.ModelName()), source_prototxt=s(fm.SourcePrototxt()),
        source_caffemodel=s(fm.SourceCaffemodel()), source_sha1=s(fm.SourceSha1()),
        preprocessing=pre, labels=[fm.Labels(i).decode() for i in range(fm.LabelsLength())],
        converter_version=s(fm.ConverterVersion()),
        converter_options=json.loads(s(fm.ConverterOptions()) or "{}"),
        extra=json.loads(s(fm.Extra()) or "{}"))
