"""Running bundles: ``Session`` over libedgebrew (the C runtime, through cffi)."""
from .session import IOInfo, Model, Session  # noqa: F401
