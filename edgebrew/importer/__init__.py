"""Caffe -> IR: parse prototxt/caffemodel with our wire-compatible caffe.proto, upgrade legacy
nets, apply TEST-phase rules, and build a Graph."""
from .caffe_import import load_caffe  # noqa: F401
