"""Concat, Slice, Split, Eltwise, Flatten, Reshape, Crop, Permute, ArgMax, Reduction:
their Caffe parameters -> IR attributes (see ``edgebrew/ir/ops/tensor_ops.py``)."""
from ...errors import UnsupportedLayerError
from . import maps, opt, unsupported


def enum_name(msg, field: str) -> str:
    """The name of an enum field's value ("SUM", "CENTER_SIZE", ...), from the proto schema."""
    value = getattr(msg, field)
    return msg.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[value].name


def invalid(layer, what: str) -> UnsupportedLayerError:
    """A parameter combination Caffe itself rejects (a CHECK failure in its layer setup)."""
    return UnsupportedLayerError(f"layer '{layer.name}' ({layer.type}): {what}")


def _axis_or_legacy(layer, p, legacy: str) -> int:
    if p.HasField("axis") and p.HasField(legacy):
        raise invalid(layer, f"give either axis or {legacy}, not both")
    return int(getattr(p, legacy)) if p.HasField(legacy) else int(p.axis)


@maps("Concat")
def concat(layer):
    return dict(axis=_axis_or_legacy(layer, layer.concat_param, "concat_dim"))


@maps("Slice")
def slice_(layer):
    p = layer.slice_param
    return dict(axis=_axis_or_legacy(layer, p, "slice_dim"),
                slice_point=tuple(int(v) for v in p.slice_point))


@maps("Split")
def split(layer):
    return {}


@maps("Eltwise")
def eltwise(layer):
    p = layer.eltwise_param
    op = enum_name(p, "operation")
    coeff = tuple(float(c) for c in p.coeff)
    if coeff and op != "SUM":
        raise invalid(layer, f"coeff is only allowed with operation SUM, not {op}")
    if coeff and len(coeff) != len(layer.bottom):
        raise invalid(layer, f"{len(coeff)} coeff(s) for {len(layer.bottom)} bottoms (give one "
                             "per bottom)")
    return dict(operation=op, coeff=coeff)   # stable_prod_grad only affects the backward pass


@maps("Flatten")
def flatten(layer):
    p = layer.flatten_param
    return dict(axis=int(p.axis), end_axis=int(p.end_axis))


@maps("Reshape")
def reshape(layer):
    p = layer.reshape_param
    return dict(shape=tuple(int(d) for d in p.shape.dim), axis=int(p.axis),
                num_axes=int(p.num_axes))


@maps("Crop")
def crop(layer):
    p = layer.crop_param
    return dict(axis=int(p.axis), offset=tuple(int(o) for o in p.offset))


@maps("Permute")
def permute(layer):
    return dict(order=tuple(int(o) for o in layer.permute_param.order))


@maps("ArgMax")
def argmax(layer):
    p = layer.argmax_param
    axis = opt(p, "axis")
    return dict(out_max_val=bool(p.out_max_val), top_k=int(p.top_k),
                axis=None if axis is None else int(axis))


@maps("Reduction")
def reduction(layer):
    p = layer.reduction_param
    op = enum_name(p, "operation")
    if op not in ("SUM", "ASUM", "SUMSQ", "MEAN"):
        raise unsupported(layer, f"reduction operation {op}")
    return dict(operation=op, axis=int(p.axis), coeff=float(p.coeff))
