"""Caffe's schema (wire-compatible), and the module protoc generates from it."""
