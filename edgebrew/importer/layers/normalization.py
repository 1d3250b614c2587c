"""BatchNorm, Scale, Bias, LRN, MVN: their Caffe parameters -> IR attributes."""
from ...errors import UnsupportedLayerError
from . import maps, unsupported

_NORM_REGIONS = {0: "ACROSS_CHANNELS", 1: "WITHIN_CHANNEL"}


@maps("BatchNorm")
def batch_norm(layer):
    p = layer.batch_norm_param
    # At TEST Caffe normalizes with the stored statistics unless told otherwise.
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise unsupported(layer, "use_global_stats: false (normalizing with batch statistics)")
    return dict(eps=float(p.eps))


@maps("Scale")
def scale(layer):
    p = layer.scale_param
    if p.num_axes < -1:
        raise UnsupportedLayerError(f"layer '{layer.name}' (Scale): num_axes must be -1 or "
                                    f"more, got {p.num_axes}")
    return dict(axis=int(p.axis), num_axes=int(p.num_axes), bias_term=bool(p.bias_term))


@maps("Bias")
def bias(layer):
    p = layer.bias_param
    if p.num_axes < -1:
        raise UnsupportedLayerError(f"layer '{layer.name}' (Bias): num_axes must be -1 or "
                                    f"more, got {p.num_axes}")
    return dict(axis=int(p.axis), num_axes=int(p.num_axes))


@maps("LRN")
def lrn(layer):
    p = layer.lrn_param
    region = _NORM_REGIONS.get(int(p.norm_region))
    if region is None:
        raise unsupported(layer, f"norm_region {p.norm_region}")
    if p.local_size % 2 != 1:
        raise UnsupportedLayerError(f"layer '{layer.name}' (LRN): local_size must be odd, "
                                    f"got {p.local_size}")
    return dict(local_size=int(p.local_size), alpha=float(p.alpha), beta=float(p.beta),
                k=float(p.k), norm_region=region)


@maps("MVN")
def mvn(layer):
    p = layer.mvn_param
    return dict(normalize_variance=bool(p.normalize_variance),
                across_channels=bool(p.across_channels), eps=float(p.eps))
