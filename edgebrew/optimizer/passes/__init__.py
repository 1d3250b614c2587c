"""The optimizer's passes, one module each; importing this package registers them.

``DEFAULT_PIPELINE`` is the order ``optimize`` runs them in: no-ops and constants first (they
expose folds), then affine folds into producers, the leftover affine ops, activation fusion, and
dead ops last. Each pass is also correct alone.
"""
from . import remove_noops, fold_constants, fold_batchnorm, affine, fuse_activations  # noqa: F401
from . import dead_nodes  # noqa: F401

DEFAULT_PIPELINE = (
    "remove_noops",
    "fold_constants",
    "fold_batchnorm",
    "batchnorm_to_scale",
    "merge_affine",
    "fuse_activations",
    "eliminate_dead_nodes",
)
