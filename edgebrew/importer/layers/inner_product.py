"""InnerProduct: InnerProductParameter -> IR attributes."""
from . import maps, unsupported


@maps("InnerProduct")
def inner_product(layer):
    p = layer.inner_product_param
    if not p.num_output:
        raise unsupported(layer, "num_output 0 (or missing)")
    return dict(num_output=int(p.num_output), bias_term=bool(p.bias_term), axis=int(p.axis),
                transpose=bool(p.transpose))
