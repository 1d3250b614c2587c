"""Pooling: PoolingParameter -> IR attributes (kernel / stride / pad resolved to (h, w) pairs).

The kernel / pad / stride forms are checked as Caffe's PoolingLayer::LayerSetUp checks them.
"""
from ...errors import UnsupportedLayerError
from . import maps, unsupported

_METHODS = {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
_ROUND = {0: "CEIL", 1: "FLOOR"}


def _invalid(layer, what):
    return UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): {what}")


def _pad_or_stride(layer, p, name):
    """`name` alone (its proto default when absent), or both `name_h` and `name_w`."""
    has_h, has_w = p.HasField(f"{name}_h"), p.HasField(f"{name}_w")
    if has_h or has_w:
        if p.HasField(name) or not (has_h and has_w):
            raise _invalid(layer, f"give {name}, or both {name}_h and {name}_w, not a mix")
        return (int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w")))
    v = int(getattr(p, name))
    return (v, v)


def _kernel(layer, p):
    has_size = p.HasField("kernel_size")
    has_hw = p.HasField("kernel_h") and p.HasField("kernel_w")
    if p.global_pooling:
        if has_size or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise _invalid(layer, "global_pooling takes no kernel size")
        return None
    if has_size == has_hw:
        raise _invalid(layer, "give kernel_size, or both kernel_h and kernel_w (exactly one)")
    return (int(p.kernel_size),) * 2 if has_size else (int(p.kernel_h), int(p.kernel_w))


@maps("Pooling")
def pooling(layer):
    p = layer.pooling_param
    method = _METHODS.get(int(p.pool), str(p.pool))
    if method not in ("MAX", "AVE"):
        raise unsupported(layer, f"{method} pooling")
    if len(layer.top) > 1:
        raise unsupported(layer, "a second top (the max-pooling mask)")
    round_mode = _ROUND.get(int(p.round_mode))
    if round_mode is None:
        raise unsupported(layer, f"round_mode {p.round_mode}")
    return dict(method=method, kernel=_kernel(layer, p),
                stride=_pad_or_stride(layer, p, "stride"), pad=_pad_or_stride(layer, p, "pad"),
                global_pooling=bool(p.global_pooling), round_mode=round_mode)
