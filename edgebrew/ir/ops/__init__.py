"""Op declarations, one module per op (or per family of trivial elementwise ops).

Importing this package registers every op in ``OPS`` (Caffe type name -> declaration).
"""
from .base import OPS, REQUIRED, Attr, OpDef, canonical_axis, get_op, register  # noqa: F401
from . import convolution  # noqa: F401,E402
from . import pooling  # noqa: F401,E402
from . import inner_product  # noqa: F401,E402
from . import activations  # noqa: F401,E402
from . import normalization  # noqa: F401,E402
from . import softmax  # noqa: F401,E402
from . import tensor_ops  # noqa: F401,E402
from . import detection  # noqa: F401,E402
from . import quantize  # noqa: F401,E402
