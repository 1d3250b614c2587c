"""IR -> ONNX export, with Caffe's exact semantics, checked by onnx and onnxruntime.

``export_onnx(source, path, *, opset=17, optimized=True, dynamic_batch=False)`` writes a file;
``build_model`` returns the ModelProto. The ``onnx`` package is needed only when exporting
(``pip install 'edgebrew[onnx]'``).

Layout: ``exporter`` (the driver), ``context`` (names, nodes, initializers), ``registry`` (op
type -> mapping function), ``builders`` (small shared subgraphs), ``metadata``
(metadata_props), and ``ops/``: the mappings, one module per family as in ``edgebrew/ir/ops``.
"""
from .context import OnnxExportError  # noqa: F401
from .exporter import build_model, export_onnx, save_model  # noqa: F401
