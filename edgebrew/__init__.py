"""edgebrew: bring trained Caffe networks to edge devices.

Public API: ``load_caffe`` (prototxt + caffemodel -> Graph), ``reference.run`` (NumPy oracle),
``Graph``, and the ``EdgebrewError`` family.
"""
from .errors import EdgebrewError  # noqa: F401
from .ir import Graph, Node, TensorInfo  # noqa: F401
from . import reference  # noqa: F401
from .importer import load_caffe  # noqa: F401

__version__ = "0.1.0"
