"""Legacy nets (V1 ``layers { type: ENUM }`` and V0 ``layers { layer { type: "conv" } }``) upgraded
to V2 ``LayerParameter``s the way Caffe's upgrade_proto does, including V0's separate padding
layers, which are absorbed into the convolution or pooling that reads them.
"""
from __future__ import annotations

from ..errors import ModelFormatError
from .proto import caffe_pb2

# V1 LayerType enum name -> V2 type string.
_V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# V0 type string -> V2 type string.
_V0_TYPES = {
    "accuracy": "Accuracy", "bnll": "BNLL", "concat": "Concat", "conv": "Convolution",
    "data": "Data", "dropout": "Dropout", "euclidean_loss": "EuclideanLoss",
    "flatten": "Flatten", "hdf5_data": "HDF5Data", "hdf5_output": "HDF5Output",
    "im2col": "Im2col", "images": "ImageData", "infogain_loss": "InfogainLoss",
    "innerproduct": "InnerProduct", "lrn": "LRN",
    "multinomial_logistic_loss": "MultinomialLogisticLoss", "pool": "Pooling", "relu": "ReLU",
    "sigmoid": "Sigmoid", "softmax": "Softmax", "softmax_loss": "SoftmaxWithLoss",
    "split": "Split", "tanh": "TanH", "window_data": "WindowData",
}


def needs_upgrade(net) -> bool:
    return len(net.layers) > 0


def upgrade_net(net, source: str) -> list:
    """The V2 layers of ``net`` (upgraded from ``net.layers`` if that is where they are)."""
    if not len(net.layers):
        return list(net.layer)
    if len(net.layer):
        raise ModelFormatError(f"{source}: mixes V2 'layer' and legacy 'layers' fields")
    if any(v1.HasField("layer") for v1 in net.layers):
        return _upgrade_v0(net.layers, source)
    return [_upgrade_v1(v1, source) for v1 in net.layers]


def _upgrade_v1(v1, source):
    layer = caffe_pb2.LayerParameter()
    layer.name = v1.name
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    layer.loss_weight.extend(v1.loss_weight)
    layer.blobs.extend(v1.blobs)
    type_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
    if type_name not in _V1_TYPES:
        raise ModelFormatError(f"{source}: legacy layer '{v1.name}' has no type")
    layer.type = _V1_TYPES[type_name]
    n_params = max(len(v1.param), len(v1.blobs_lr), len(v1.weight_decay))
    for i in range(n_params):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    # Every *_param message of V1 exists under the same name in V2.
    for field, value in v1.ListFields():
        if field.name.endswith("_param"):
            getattr(layer, field.name).CopyFrom(value)
    return layer


def _upgrade_v0(layers, source):
    out, padding = [], {}   # padding: top name -> (bottom name, pad)
    for v1 in layers:
        v0 = v1.layer
        if v0.type == "padding":
            if len(v1.bottom) != 1 or len(v1.top) != 1:
                raise ModelFormatError(f"{source}: padding layer '{v0.name}' needs one bottom "
                                       "and one top")
            padding[v1.top[0]] = (v1.bottom[0], v0.pad)
            continue
        layer = caffe_pb2.LayerParameter()
        layer.name = v0.name
        if v0.type not in _V0_TYPES:
            raise ModelFormatError(f"{source}: legacy layer '{v0.name}' has unknown V0 type "
                                   f"'{v0.type}'")
        layer.type = _V0_TYPES[v0.type]
        layer.top.extend(v1.top)
        pad_from_layer = 0
        for b in v1.bottom:
            if b in padding:   # read through the padding layer; its pad moves here
                if layer.type not in ("Convolution", "Pooling"):
                    raise ModelFormatError(f"{source}: padding layer feeds '{v0.name}' "
                                           f"({layer.type}); only conv/pool can absorb it")
                b, pad_from_layer = padding[b]
            layer.bottom.append(b)
        layer.blobs.extend(v0.blobs)
        for i in range(max(len(v0.blobs_lr), len(v0.weight_decay))):
            spec = layer.param.add()
            if i < len(v0.blobs_lr):
                spec.lr_mult = v0.blobs_lr[i]
            if i < len(v0.weight_decay):
                spec.decay_mult = v0.weight_decay[i]
        _v0_params(v0, layer, pad_from_layer)
        out.append(layer)
    return out


def _v0_params(v0, layer, pad):
    t, has = layer.type, v0.HasField
    if t in ("Convolution", "InnerProduct"):
        p = layer.convolution_param if t == "Convolution" else layer.inner_product_param
        if has("num_output"):
            p.num_output = v0.num_output
        if has("biasterm"):
            p.bias_term = v0.biasterm
    if t == "Convolution":
        p = layer.convolution_param
        if has("kernelsize"):
            p.kernel_size.append(v0.kernelsize)
        if has("stride"):
            p.stride.append(v0.stride)
        if has("group"):
            p.group = v0.group
        if pad or has("pad"):
            p.pad.append(pad or v0.pad)
    elif t == "Pooling":
        p = layer.pooling_param
        if has("kernelsize"):
            p.kernel_size = v0.kernelsize
        if has("stride"):
            p.stride = v0.stride
        if has("pool"):
            p.pool = v0.pool
        if pad or has("pad"):
            p.pad = pad or v0.pad
    elif t == "Dropout" and has("dropout_ratio"):
        layer.dropout_param.dropout_ratio = v0.dropout_ratio
    elif t == "LRN":
        p = layer.lrn_param
        for f in ("local_size", "alpha", "beta", "k"):
            if has(f):
                setattr(p, f, getattr(v0, f))
    elif t == "Concat" and has("concat_dim"):
        layer.concat_param.concat_dim = v0.concat_dim
