"""Reading Caffe files with the protobuf library: prototxt (text), caffemodel and binaryproto.

Every failure becomes a ModelFormatError that names the file (and the line, for text).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from google.protobuf import message, text_format

from ..errors import EdgebrewError, ModelFormatError, PrototxtSyntaxError, WeightsError
from .proto import caffe_pb2


def _read_bytes(path, what) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EdgebrewError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise EdgebrewError(f"{path}: is a folder, expected a {what}") from None
    except OSError as e:
        raise EdgebrewError(f"{path}: cannot read {what}: {e.strerror}") from None


def parse_text(path, msg_type):
    """Parse a text-format protobuf file (prototxt) into a new message of ``msg_type``."""
    data = _read_bytes(path, "prototxt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise PrototxtSyntaxError(path, line, "not UTF-8 text (is this a binary caffemodel?)") \
            from None
    msg = msg_type()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        detail = str(e)
        # The library prefixes "line:col : "; keep the message, report the line ourselves.
        if ":" in detail and detail.split(":", 1)[0].isdigit():
            detail = detail.split(":", 2)[-1].lstrip(" :")
        raise PrototxtSyntaxError(path, e.GetLine(), detail) from None
    except (message.DecodeError, ValueError, RecursionError) as e:
        raise PrototxtSyntaxError(path, None, f"cannot parse: {e}") from None
    return msg


def read_prototxt(path) -> caffe_pb2.NetParameter:
    return parse_text(path, caffe_pb2.NetParameter)


def parse_binary(data: bytes, msg_type, path, what):
    msg = msg_type()
    try:
        msg.ParseFromString(data)
    except (message.DecodeError, RuntimeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: not a valid {what} (truncated or corrupted): {e}") \
            from None
    return msg


def read_caffemodel(path) -> caffe_pb2.NetParameter:
    data = _read_bytes(path, "caffemodel")
    if not data:
        raise ModelFormatError(f"{path}: empty caffemodel")
    net = parse_binary(data, caffe_pb2.NetParameter, path, "caffemodel")
    if not len(net.layer) and not len(net.layers):
        raise ModelFormatError(f"{path}: not a caffemodel: it holds no layers (truncated, "
                               "corrupted, or a different kind of file)")
    return net


def blob_to_array(blob, where: str) -> tuple[np.ndarray, bool]:
    """A BlobProto as a float32 array, and whether it used the legacy num/channels/h/w dims."""
    legacy = not blob.HasField("shape")
    if legacy:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if any(d < 0 for d in shape):
        raise WeightsError(f"{where}: negative dimension in blob shape {shape}")
    count = math.prod(shape)   # Python ints: a corrupted huge shape must not overflow
    n_float, n_double = len(blob.data), len(blob.double_data)
    if n_float and n_double:
        raise WeightsError(f"{where}: blob has both float and double data")
    if n_float:
        arr = np.array(blob.data, dtype=np.float32)
    elif n_double:
        arr = np.array(blob.double_data, dtype=np.float64).astype(np.float32)
    else:
        arr = np.zeros(0, np.float32)
    if arr.size != count:
        raise WeightsError(f"{where}: blob shape {shape} needs {count} values, the file holds "
                           f"{arr.size}")
    return arr.reshape(shape), legacy


def read_binaryproto(path) -> np.ndarray:
    """A mean file (BlobProto), e.g. ``mean.binaryproto``, as a float32 array."""
    data = _read_bytes(path, "binaryproto")
    blob = parse_binary(data, caffe_pb2.BlobProto, path, "binaryproto (BlobProto)")
    arr, _ = blob_to_array(blob, str(path))
    if arr.size == 0:
        raise ModelFormatError(f"{path}: the BlobProto holds no data")
    return arr
