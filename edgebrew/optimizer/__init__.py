"""Graph -> Graph passes (each semantics-preserving and testable alone) and the memory planner."""
