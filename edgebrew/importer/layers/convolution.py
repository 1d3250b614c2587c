"""Convolution and Deconvolution: ConvolutionParameter -> IR geometry attributes."""
from . import maps, opt, pair, unsupported


@maps("Convolution", "Deconvolution")
def convolution(layer):
    p = layer.convolution_param
    if p.axis != 1:
        raise unsupported(layer, f"convolution_param.axis {p.axis}")
    if p.force_nd_im2col:
        raise unsupported(layer, "force_nd_im2col")
    return dict(
        num_output=int(p.num_output),
        kernel=pair(layer, p.kernel_size, opt(p, "kernel_h"), opt(p, "kernel_w"), None, "kernel"),
        stride=pair(layer, p.stride, opt(p, "stride_h"), opt(p, "stride_w"), 1, "stride"),
        pad=pair(layer, p.pad, opt(p, "pad_h"), opt(p, "pad_w"), 0, "pad"),
        dilation=pair(layer, p.dilation, None, None, 1, "dilation"),
        group=int(p.group),
        bias_term=bool(p.bias_term),
    )
