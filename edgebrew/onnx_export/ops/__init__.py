"""ONNX mappings of the IR ops, one module per family (mirroring edgebrew/ir/ops).

Importing this package registers every mapping in ``registry.MAPPERS``.
"""
from . import convolution  # noqa: F401
from . import pooling  # noqa: F401
from . import inner_product  # noqa: F401
from . import activations  # noqa: F401
from . import normalization  # noqa: F401
from . import softmax  # noqa: F401
from . import tensor_ops  # noqa: F401
from . import detection  # noqa: F401
from . import quantize  # noqa: F401
