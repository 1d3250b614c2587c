"""Softmax: SoftmaxParameter -> IR attributes (the engine does not change the result)."""
from . import maps


@maps("Softmax")
def softmax(layer):
    return dict(axis=int(layer.softmax_param.axis))
