"""SSD fork layers: Normalize, PriorBox, DetectionOutput parameters -> IR attributes
(see ``edgebrew/ir/ops/detection.py``).

Ignored on purpose: Normalize's ``scale_filler`` (the weights come from the caffemodel), and
DetectionOutput's ``save_output_param``, ``visualize``, ``visualize_threshold`` and ``save_file``
(they write result files or draw images and leave the output unchanged).
"""
from . import maps, opt
from .tensor_ops import enum_name, invalid


@maps("Normalize")
def normalize(layer):
    p = layer.norm_param
    return dict(across_spatial=bool(p.across_spatial), channel_shared=bool(p.channel_shared),
                eps=float(p.eps))


def _pair_or_single(layer, p, single, h, w, zero):
    """Resolve PriorBox's `img_size` / `img_h`+`img_w` (and `step` / `step_h`+`step_w`) forms
    the way the fork does: h/w win, and may not be mixed with the single value."""
    if p.HasField(h) or p.HasField(w):
        if p.HasField(single):
            raise invalid(layer, f"give either {single} or {h}/{w}, not both")
        vh, vw = getattr(p, h), getattr(p, w)
        if not (vh > 0 and vw > 0):
            raise invalid(layer, f"{h} and {w} must both be positive, got {vh} and {vw}")
        return vh, vw
    if p.HasField(single):
        v = getattr(p, single)
        if not v > 0:
            raise invalid(layer, f"{single} must be positive, got {v}")
        return v, v
    return zero, zero


@maps("PriorBox")
def prior_box(layer):
    p = layer.prior_box_param
    if not len(p.min_size):
        raise invalid(layer, "min_size is required")
    if any(m <= 0 for m in p.min_size):
        raise invalid(layer, f"min_size {list(p.min_size)} must be positive")
    if len(p.max_size):
        if len(p.max_size) != len(p.min_size):
            raise invalid(layer, f"{len(p.max_size)} max_size(s) for {len(p.min_size)} "
                                 "min_size(s)")
        if any(not hi > lo for lo, hi in zip(p.min_size, p.max_size)):
            raise invalid(layer, "each max_size must be greater than its min_size")
    variance = tuple(float(v) for v in p.variance) or (0.1,)
    if len(variance) not in (1, 4) or any(v <= 0 for v in variance):
        raise invalid(layer, f"variance {list(variance)} must be 1 or 4 positive values")
    img_h, img_w = _pair_or_single(layer, p, "img_size", "img_h", "img_w", 0)
    step_h, step_w = _pair_or_single(layer, p, "step", "step_h", "step_w", 0.0)
    return dict(
        min_size=tuple(float(v) for v in p.min_size),
        max_size=tuple(float(v) for v in p.max_size),
        aspect_ratio=tuple(float(v) for v in p.aspect_ratio),
        flip=bool(p.flip),
        clip=bool(p.clip),
        variance=variance,
        img_h=int(img_h), img_w=int(img_w),
        step_h=float(step_h), step_w=float(step_w),
        offset=float(p.offset),
    )


@maps("DetectionOutput")
def detection_output(layer):
    p = layer.detection_output_param
    if not p.HasField("num_classes"):
        raise invalid(layer, "num_classes is required")
    nms = p.nms_param
    if nms.nms_threshold < 0:
        raise invalid(layer, f"nms_threshold {nms.nms_threshold} must not be negative")
    if not 0 < nms.eta <= 1:
        raise invalid(layer, f"eta {nms.eta} must be in (0, 1]")
    threshold = opt(p, "confidence_threshold")
    top_k = opt(nms, "top_k")
    return dict(
        num_classes=int(p.num_classes),
        share_location=bool(p.share_location),
        background_label_id=int(p.background_label_id),
        nms_threshold=float(nms.nms_threshold),
        top_k=-1 if top_k is None else int(top_k),
        eta=float(nms.eta),
        code_type=enum_name(p, "code_type"),
        variance_encoded_in_target=bool(p.variance_encoded_in_target),
        keep_top_k=int(p.keep_top_k),
        confidence_threshold=None if threshold is None else float(threshold),
    )
