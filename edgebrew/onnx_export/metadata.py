"""What travels with the exported model: model name, preprocessing and labels as ONNX
metadata_props (JSON strings), plus where the model came from and how it was exported."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..bundle.metadata import Metadata, Preprocessing


def metadata_for_graph(graph) -> Metadata:
    """Metadata of a Graph or a (prototxt, caffemodel) import: what ``edgebrew.convert`` would
    record without preprocessing options (Caffe's BGR, no mean, scale 1, the input's size)."""
    source = getattr(graph, "source", None) or {}
    shape = tuple(graph.inputs[0].shape) if graph.inputs else ()
    channels = shape[1] if len(shape) >= 2 else 0
    pre = Preprocessing(input_size=(int(shape[2]), int(shape[3])) if len(shape) == 4 else None,
                        grayscale=channels == 1)
    return Metadata(model_name=graph.name or "",
                    source_prototxt=Path(source["prototxt"]).name if source.get("prototxt") else "",
                    source_caffemodel=(Path(source["caffemodel"]).name
                                       if source.get("caffemodel") else ""),
                    source_sha1=source.get("caffemodel_sha1") or "",
                    preprocessing=pre)


def preprocessing_json(pre: Preprocessing) -> str:
    d = dataclasses.asdict(pre)
    img = pre.mean_image
    d["mean_image"] = None if img is None else {
        "shape": [int(v) for v in np.shape(img)],
        "data": [float(v) for v in np.asarray(img, np.float32).ravel()]}
    if d.get("input_size") is not None:
        d["input_size"] = [int(v) for v in d["input_size"]]
    return json.dumps(d)


def metadata_props(meta: Metadata, export_options: dict) -> dict[str, str]:
    props = {
        "model_name": meta.model_name or "",
        "preprocessing": preprocessing_json(meta.preprocessing),
        "labels": json.dumps(list(meta.labels)),
        "edgebrew_export": json.dumps(export_options),
    }
    for key in ("source_prototxt", "source_caffemodel", "source_sha1", "converter_version"):
        value = getattr(meta, key, "")
        if value:
            props[key] = str(value)
    return props
