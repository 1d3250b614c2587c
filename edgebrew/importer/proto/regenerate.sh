#!/usr/bin/env bash
# Regenerate caffe_pb2.py from caffe.proto. Run from the repository root:
#   bash edgebrew/importer/proto/regenerate.sh
# Needs grpcio-tools (it bundles protoc). The generated module checks the
# protobuf runtime version at import time; keep the installed protobuf at
# least as new as the protoc that generated it.
set -euo pipefail
python3 -m grpc_tools.protoc \
  --proto_path=edgebrew/importer/proto \
  --python_out=edgebrew/importer/proto \
  edgebrew/importer/proto/caffe.proto
