"""Elementwise activations: their Caffe parameters -> IR attributes."""
import math

from ...errors import UnsupportedLayerError
from . import maps, unsupported


@maps("ReLU")
def relu(layer):
    return dict(negative_slope=float(layer.relu_param.negative_slope))


@maps("PReLU")
def prelu(layer):
    return dict(channel_shared=bool(layer.prelu_param.channel_shared))


@maps("ELU")
def elu(layer):
    return dict(alpha=float(layer.elu_param.alpha))


@maps("Sigmoid", "TanH", "AbsVal", "BNLL", "Dropout")
def no_attrs(layer):
    # Dropout's dropout_ratio only matters in training: at TEST Caffe copies the input.
    return {}


@maps("Power")
def power(layer):
    p = layer.power_param
    return dict(power=float(p.power), scale=float(p.scale), shift=float(p.shift))


def _base(layer, p):
    base = float(p.base)
    if base != -1 and not base > 0:
        raise UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): base must be "
                                    f"positive or -1 (for e), got {base}")
    if layer.type == "Log" and base != -1 and math.log(base) == 0:
        raise UnsupportedLayerError(f"layer '{layer.name}' (Log): base 1 has no logarithm")
    return base


@maps("Exp")
def exp(layer):
    p = layer.exp_param
    return dict(base=_base(layer, p), scale=float(p.scale), shift=float(p.shift))


@maps("Log")
def log(layer):
    p = layer.log_param
    return dict(base=_base(layer, p), scale=float(p.scale), shift=float(p.shift))


@maps("Threshold")
def threshold(layer):
    return dict(threshold=float(layer.threshold_param.threshold))


@maps("Clip")
def clip(layer):
    p = layer.clip_param
    if not (p.HasField("min") and p.HasField("max")):
        raise unsupported(layer, "a clip_param without both min and max")
    return dict(min=float(p.min), max=float(p.max))
