"""Graph -> Graph passes (each semantics-preserving and testable alone) and the memory planner.

``optimize(graph, passes=None, skip_passes=())`` runs the default pipeline (``DEFAULT_PIPELINE``)
and returns ``(optimized graph, log)``, one ``PassRecord`` per pass; ``plan_memory`` places every
activation in one arena and ``check_plan`` verifies a plan.
"""
from .manager import (PASSES, PLANNER_OPTIONS, Pass, PassRecord, default_pipeline,  # noqa: F401
                      op_counts, optimize, planner_options, planner_records,
                      select_passes)
from . import passes  # noqa: F401,E402
from .passes import DEFAULT_PIPELINE  # noqa: F401,E402
from .memory_planner import MemoryPlan, check_plan, plan_memory  # noqa: F401,E402
