"""edgebrew's intermediate representation: Graph, Node, TensorInfo and the op declarations."""
from .graph import Graph, Node, TensorInfo  # noqa: F401
from .ops import OPS, get_op  # noqa: F401
