"""Caffe layer parameters -> IR attributes, one module per op family (mirroring ``ir/ops``).

A mapper takes a (V2) ``caffe_pb2.LayerParameter`` and returns the IR attributes of the op of the
same type name. It raises ``UnsupportedLayerError`` (naming the layer) for parameter values the
IR does not support.
"""
from __future__ import annotations

from typing import Callable

from ...errors import UnsupportedLayerError

Mapper = Callable[[object], dict]
MAPPERS: dict[str, Mapper] = {}


def maps(*caffe_types: str):
    """Decorator: register a mapper for one or more Caffe layer type names."""
    def deco(fn: Mapper) -> Mapper:
        for t in caffe_types:
            if t in MAPPERS:
                raise RuntimeError(f"layer type {t} mapped twice")
            MAPPERS[t] = fn
        return fn
    return deco


def unsupported(layer, what: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): {what} is not supported")


def pair(layer, repeated, h, w, default, name):
    """Resolve Caffe's `x` (repeated, 1 or 2 values) / `x_h`+`x_w` forms to an (h, w) pair."""
    if h is not None or w is not None:
        if len(repeated):
            raise unsupported(layer, f"giving both {name} and {name}_h/{name}_w")
        if h is None or w is None:
            raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): {name}_h and "
                                        f"{name}_w must be given together")
        return (int(h), int(w))
    vals = [int(v) for v in repeated]
    if not vals:
        if default is None:
            raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): {name} is required")
        return (default, default)
    if len(vals) == 1:
        return (vals[0], vals[0])
    if len(vals) == 2:
        return (vals[0], vals[1])
    raise unsupported(layer, f"{len(vals)}-d {name} (only 2-d spatial convolution)")


def opt(msg, field):
    """A proto2 optional field's value, or None when it is not set."""
    return getattr(msg, field) if msg.HasField(field) else None


from . import convolution  # noqa: E402,F401
from . import pooling  # noqa: E402,F401
from . import inner_product  # noqa: E402,F401
from . import activations  # noqa: E402,F401
from . import normalization  # noqa: E402,F401
from . import softmax  # noqa: E402,F401
from . import tensor_ops  # noqa: E402,F401
from . import detection  # noqa: E402,F401
