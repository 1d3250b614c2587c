"""ExportContext: what a mapper uses to emit ONNX nodes for one IR node.

It owns the ONNX node list and the initializers, hands out unique tensor and node names derived
from the layer being exported (the first ONNX node of a layer carries the layer's own name,
helper tensors are named ``<layer>/<what>``), knows every IR tensor's static shape and, for
batch-agnostic exports, which axes of each tensor scale with the batch.

Every weight and activation a mapper reads goes through ``weight`` / the node's input names, so a
later int8 (QDQ) export can wrap them with QuantizeLinear/DequantizeLinear per op in one place.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import EdgebrewError


class OnnxExportError(EdgebrewError):
    """A construct that cannot be exported to ONNX with Caffe's exact semantics."""


class ExportContext:
    def __init__(self, graph, opset: int, batch_axes: dict | None, dynamic_batch: bool):
        from onnx import helper, numpy_helper
        self._helper, self._numpy_helper = helper, numpy_helper
        self.graph = graph
        self.opset = int(opset)
        self.dynamic_batch = dynamic_batch
        self._batch_axes = batch_axes or {}
        self.nodes: list = []
        self.initializers: dict = {}            # name -> TensorProto, in creation order
        self._arrays: dict[str, np.ndarray] = {}
        self._const_cache: dict = {}
        self._tensor_names: set[str] = {t.name for t in graph.inputs}
        for n in graph.nodes:
            self._tensor_names.update(n.inputs)
            self._tensor_names.update(n.outputs)
            self._tensor_names.update(n.weights)
        self._node_names: set[str] = set()
        self.layer = None                       # the IR node being exported

    # -- shapes ----------------------------------------------------------------------------
    def shape(self, tensor: str) -> tuple[int, ...]:
        """The IR's static shape of a tensor (at the IR graph's own batch size)."""
        return tuple(self.graph.shapes[tensor])

    def batch_axes(self, tensor: str) -> frozenset:
        """Axes of ``tensor`` whose size scales with the batch (empty when unknown)."""
        return self._batch_axes.get(tensor, frozenset())

    def dynamic_axes(self, tensor: str) -> frozenset:
        """Axes of ``tensor`` that are symbolic in a dynamic-batch export (empty otherwise):
        what a mapper must not bake into a constant."""
        return self.batch_axes(tensor) if self.dynamic_batch else frozenset()

    # -- errors ----------------------------------------------------------------------------
    def error(self, message: str, node=None) -> OnnxExportError:
        node = node or self.layer
        where = f"layer '{node.name}' ({node.op_type})" if node is not None else "graph"
        return OnnxExportError(f"ONNX export: {where}: {message}")

    # -- names -----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor name no one uses yet: ``<layer>/<hint>``, numbered if needed."""
        base = f"{self.layer.name}/{hint}" if self.layer is not None else hint
        name, k = base, 1
        while name in self._tensor_names:
            k += 1
            name = f"{base}_{k}"
        self._tensor_names.add(name)
        return name

    def _node_name(self, op_type: str) -> str:
        base = self.layer.name if self.layer is not None else op_type
        if base not in self._node_names:
            self._node_names.add(base)
            return base
        base = f"{base}/{op_type}"
        name, k = base, 1
        while name in self._node_names:
            k += 1
            name = f"{base}_{k}"
        self._node_names.add(name)
        return name

    # -- nodes -----------------------------------------------------------------------------
    def emit(self, op_type: str, inputs: Sequence[str], outputs=None, **attrs):
        """Append one ONNX node. ``outputs``: a name, a list of names, or None (one fresh
        output named after the op type). Returns the output name (or the list, when a list was
        given)."""
        single = not isinstance(outputs, (list, tuple))
        if outputs is None:
            outs = [self.fresh(op_type.lower())]
        elif single:
            outs = [outputs]
        else:
            outs = list(outputs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self._helper.make_node(op_type, list(inputs), outs,
                                                 name=self._node_name(op_type), **attrs))
        return outs[0] if single else outs

    # -- constants and weights -------------------------------------------------------------
    def _add_initializer(self, name: str, array: np.ndarray) -> str:
        array = array if array.flags.c_contiguous else np.array(array, order="C")
        self.initializers[name] = self._numpy_helper.from_array(array, name)
        self._arrays[name] = array
        return name

    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        """An initializer holding ``value`` (small constants are shared between nodes)."""
        array = np.asarray(value, dtype=dtype)
        key = None
        if array.size <= 64:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._const_cache:
                return self._const_cache[key]
        name = self._add_initializer(self.fresh(hint), array)
        if key is not None:
            self._const_cache[key] = name
        return name

    def ints(self, values: Iterable[int], hint: str = "ints") -> str:
        """A 1-D int64 initializer (shapes, axes, starts/ends...)."""
        return self.const(np.array([int(v) for v in values], dtype=np.int64), hint, np.int64)

    def scalar(self, value, hint: str = "scalar", dtype=np.float32) -> str:
        return self.const(np.array(value, dtype=dtype), hint, dtype)

    def _dequantized_weight(self, node, index: int) -> str:
        """int8 weights: DequantizeLinear(q, per-channel scale, 0, axis 0). int32 biases: the
        same with scale = input scale x weight scale (what ORT's QLinear kernels expect)."""
        name = node.weights[index]
        key = (name, node.inputs[0]) if index else name
        if key in self._const_cache:
            return self._const_cache[key]
        q = self.graph.initializers[name]
        if index == 0:
            qp = self.graph.quant[name]
            scale = qp.scale
        else:
            w_scale = self.graph.quant[node.weights[0]].scale
            scale = (np.float32(self.graph.quant[node.inputs[0]].s) * w_scale).astype(np.float32)
        data = name if name not in self._arrays else self.fresh(f"{name}_q")
        if data == name:
            self._add_initializer(name, np.ascontiguousarray(q))
        zp = self.const(np.zeros(len(scale), q.dtype), f"{name}_zero_point", q.dtype)
        out = self.emit("DequantizeLinear",
                        [data, self.const(scale, f"{name}_scale"), zp],
                        self.fresh(f"{name.split(':')[0]}_dequantized"), axis=0)
        self._const_cache[key] = out
        return out

    def weight_array(self, node, index: int) -> np.ndarray:
        """The IR weight blob ``index`` of ``node`` as a float32 array."""
        return np.asarray(self.graph.initializers[node.weights[index]], dtype=np.float32)

    def weight(self, node, index: int, array: np.ndarray | None = None) -> str:
        """An initializer for weight blob ``index`` of ``node``, keeping the IR's name.

        ``array`` is the blob as the ONNX op needs it (reshaped, rescaled...); by default the
        blob itself. A blob shared by layers that need it in different forms gets one
        initializer per form. An int8 / int32 blob of a quantized graph becomes the integer
        initializer plus a per-channel DequantizeLinear (QDQ), whose output is returned."""
        base = node.weights[index]
        if self.graph.initializers[base].dtype.kind == "i":
            if array is not None:
                raise self.error("this layer's int8 form cannot be exported as QDQ (its weights "
                                 "would need reshaping): keep it in fp32 (--keep-fp32)")
            return self._dequantized_weight(node, index)
        array = self.weight_array(node, index) if array is None else np.asarray(array)
        array = array.astype(np.float32, copy=False)
        if base in self._arrays:
            have = self._arrays[base]
            if have.shape == array.shape and np.array_equal(have, array):
                return base
            for name, arr in self._arrays.items():
                if name.startswith(base + "/") and arr.shape == array.shape \
                        and np.array_equal(arr, array):
                    return name
            name, k = f"{base}/{self.layer.name}", 1
            while name in self._tensor_names:
                k += 1
                name = f"{base}/{self.layer.name}_{k}"
            self._tensor_names.add(name)
            return self._add_initializer(name, array)
        return self._add_initializer(base, array)
