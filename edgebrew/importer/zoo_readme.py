"""A model-zoo ``readme.md`` beside the prototxt: YAML front matter with name, caffemodel, sha1.

When it gives a sha1, the weights file must match it; a mismatch is an error, since a wrong or
half-downloaded caffemodel otherwise fails in confusing ways (or silently gives wrong outputs).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from ..errors import ModelFormatError, WeightsError


def read_zoo_readme(prototxt) -> dict | None:
    """The front matter of ``readme.md`` beside ``prototxt`` (any case), or None if absent."""
    folder = Path(prototxt).parent
    candidates = [p for p in folder.iterdir() if p.name.lower() == "readme.md"] \
        if folder.is_dir() else []
    if not candidates:
        return None
    path = candidates[0]
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ModelFormatError(f"{path}: front matter starts with '---' but never ends") from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as e:
        raise ModelFormatError(f"{path}: front matter is not valid YAML: {e}") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{path}: front matter is not a mapping")
    meta["_path"] = str(path)
    return meta


def sha1_of(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_weights_sha1(readme: dict, caffemodel) -> str:
    """Raise WeightsError if the readme's sha1 differs from the weights file's; return the sha1."""
    actual = sha1_of(caffemodel)
    want = readme.get("sha1")
    if want is not None and str(want).strip().lower() != actual:
        named = readme.get("caffemodel")
        about = f" (it describes {named})" if named and named != Path(caffemodel).name else ""
        raise WeightsError(f"{caffemodel}: sha1 {actual} differs from {want} in "
                           f"{readme['_path']}{about}: the weights file is not the one the model "
                           "zoo published (corrupted, truncated or a different model)")
    return actual
