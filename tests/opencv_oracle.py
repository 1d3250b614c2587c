"""OpenCV DNN as an independent Caffe implementation (opencv-python-headless 4.x)."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless 4.x is the oracle")
if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
    pytest.skip("this OpenCV has no Caffe importer (OpenCV 5 removed it)", allow_module_level=True)


def run_opencv(prototxt, caffemodel, feeds: dict[str, np.ndarray], layer_names, tops=None):
    """Forward the net in OpenCV; returns the first output of each named layer. OpenCV may name
    a layer after its top instead (``tops``, parallel to ``layer_names``, gives those)."""
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    known = set(net.getLayerNames())
    layer_names = [l if l in known or not tops else t for l, t in zip(layer_names, tops or layer_names)]
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for name, arr in feeds.items():
        net.setInput(np.ascontiguousarray(arr, np.float32), name)
    outs = net.forward(list(layer_names))
    return [np.asarray(o) for o in outs]


def producer_layer(graph, tensor):
    """The Caffe layer whose output ``tensor`` is (OpenCV names outputs by layer)."""
    for node in graph.nodes:
        if tensor in node.outputs:
            return node.name
    raise KeyError(tensor)
