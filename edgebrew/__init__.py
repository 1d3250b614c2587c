"""edgebrew: bring trained Caffe networks to edge devices.

Public API: ``load_caffe`` (prototxt + caffemodel -> Graph), ``reference.run`` (NumPy oracle),
``convert`` (-> Bundle, saved as .brew), ``Session`` (runs a bundle in the C runtime),
``export_onnx`` (-> .onnx file), ``compare_models`` (two models' outputs side by side),
``Graph``, and the ``EdgebrewError`` family.
"""
from .errors import EdgebrewError  # noqa: F401
from .ir import Graph, Node, TensorInfo  # noqa: F401
from . import reference  # noqa: F401
from .importer import load_caffe  # noqa: F401
from .bundle import Bundle  # noqa: F401
from .convert import convert  # noqa: F401
from .runtime import Session  # noqa: F401
from .onnx_export import export_onnx  # noqa: F401
from .finetune import FinetuneJob, FinetuneResult, finetune  # noqa: F401
from .compare import compare_models  # noqa: F401

__version__ = "0.1.0"
