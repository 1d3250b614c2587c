"""Caffe's NetState rules: which layers a net has in a given phase, level and stages.

Deployment imports the TEST phase (level and stages from the net's own ``state``), as
``caffe.Net(prototxt, caffe.TEST)`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelFormatError
from .proto import caffe_pb2

TEST = caffe_pb2.TEST


@dataclass
class NetState:
    phase: int = TEST
    level: int = 0
    stages: set[str] = field(default_factory=set)

    @classmethod
    def for_deploy(cls, net, stages=()):
        s = net.state if net.HasField("state") else None
        return cls(TEST, s.level if s else 0, set(s.stage if s else ()) | set(stages))

    def meets(self, rule) -> bool:
        if rule.HasField("phase") and rule.phase != self.phase:
            return False
        if rule.HasField("min_level") and self.level < rule.min_level:
            return False
        if rule.HasField("max_level") and self.level > rule.max_level:
            return False
        if any(s not in self.stages for s in rule.stage):
            return False
        if any(s in self.stages for s in rule.not_stage):
            return False
        return True

    def includes(self, layer, source: str) -> bool:
        """Caffe's FilterNet: include rules, if any, must have one match; else no exclude may."""
        if len(layer.include) and len(layer.exclude):
            raise ModelFormatError(f"{source}: layer '{layer.name}' has both include and "
                                   "exclude rules")
        if len(layer.include):
            return any(self.meets(r) for r in layer.include)
        return not any(self.meets(r) for r in layer.exclude)
