"""SSD layers of the weiliu89/caffe fork (branch ssd): Normalize, PriorBox, DetectionOutput.

These follow the fork's CPU code (normalize_layer.cpp, prior_box_layer.cpp,
detection_output_layer.cpp and util/bbox_util.cpp). Where that code has quirks, we follow them:

Normalize
  Weight: the scale blob, shape ``()`` when ``channel_shared`` (the fork makes a 0-axis blob;
  Caffe refuses a caffemodel blob of any other shape) else ``(C,)``. The norm is
  ``sqrt(sum x^2 + eps)`` per sample (``across_spatial``) or per spatial position, summing over
  channels. Across spatial, the output is ``x * (1/norm)`` with the reciprocal rounded to the
  dtype first; per position it is ``x / norm``, as in the fork.

PriorBox
  Priors per location, for each min_size in order: the min_size square, then (when max_size is
  given) the ``sqrt(min_size * max_size)`` square, then one box per aspect ratio other than 1, sized
  ``min_size * sqrt(ar)`` by ``min_size / sqrt(ar)``. The aspect ratios start as [1]. Each given
  ratio within 1e-6 of one already in the list is skipped; otherwise it is appended, followed by
  1/ratio when ``flip`` is set. min_size and max_size are truncated to integers, as the fork
  stores them in ``int`` variables, so 21.5 acts as 21 (OpenCV keeps fractions). Centres, steps and
  box sizes are single precision, as in the fork, and the corner coordinates are computed in double
  and stored in the output dtype. Clipping applies to the coordinates only. Variances are one value
  repeated, or four per prior.

DetectionOutput
  Inputs: loc ``(N, P*L*4)`` (L = 1 when ``share_location`` else num_classes), conf ``(N,
  P*num_classes)`` (already softmaxed by the net), priors ``(1, 2, P*4)``. Boxes are decoded as
  ``DecodeBBox`` does with ``clip_bbox`` false (the fork never clips here). Then, per image and per
  class other than ``background_label_id``, the fork's ``ApplyNMSFast`` runs. Candidates are the
  scores strictly above ``confidence_threshold`` (default -FLT_MAX). They are stable-sorted by
  descending score and cut to the NMS ``top_k`` *before* suppression. A candidate is kept when its
  IoU with every kept box is ``<= threshold``. After each keep, when ``eta < 1`` and the threshold
  is above 0.5, the threshold is multiplied by eta. IoU follows ``JaccardOverlap``: 0 unless the
  intersection has positive width and height, and a box with xmax < xmin or ymax < ymin has size 0.
  When ``keep_top_k > -1`` and an image has more detections than that, the detections are sorted
  by descending score across classes and cut to keep_top_k. The fork uses ``std::sort`` there, so
  the order of ties is unspecified. We use a stable sort, so ties keep label order, then NMS order.
  Output rows are ``[image_id, label, score, xmin, ymin, xmax, ymax]``. They are grouped by image,
  then by ascending label (the fork walks a ``std::map``), and within a label they are in NMS order
  or keep_top_k order. So rows are *not* sorted by score overall. When no image has any detection,
  the output is one row per image, ``[i, -1, -1, -1, -1, -1, -1]``. When share_location is set and
  background_label_id is -1, the fork's CPU path aborts (DecodeBBoxesAll skips the shared loc
  "label" -1). Here the boxes are decoded as the fork's GPU path does.
  ``save_output_param`` and ``visualize`` only write files or draw, so they are ignored (the
  importer drops them).

  Output shape: the row count depends on the data. ``infer_shapes`` returns the static upper bound
  ``(1, 1, R, 7)``, with ``R = max(N, N * min(K, C' * min(top_k, P)))``: C' is the number of
  non-background classes, K is keep_top_k (no limit when -1), and top_k has no limit when -1. Memory
  planners and runtimes allocate for R. ``run`` returns the actual ``(1, 1, k, 7)`` with
  ``1 <= k <= R``. The reference executor stores what ``run`` returns, so its output shape can
  differ from ``graph.shapes``.

  Precision: the fork converts boxes and scores to float whatever the Dtype. Here every step runs in
  the input dtype, following the fork's operation order, so float32 runs track the fork, and float64
  runs are the fork's algorithm in double. Expressions the fork evaluates in double (``exp``,
  ``/ 2.``) are evaluated in double and then rounded.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import EdgebrewError
from .base import Attr, OpDef, register

_F32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)
CODE_TYPES = ("CORNER", "CENTER_SIZE", "CORNER_SIZE")


# ---------------------------------------------------------------------------------------------
@register
class Normalize(OpDef):
    type = "Normalize"
    attrs = (Attr("across_spatial", True),
             Attr("channel_shared", True),
             Attr("eps", 1e-10))
    weights = ("scale",)

    def _check(self, node, s):
        if not 2 <= len(s) <= 4:
            raise self.shape_error(node, f"needs a 2-d to 4-d input, got {tuple(s)}")

    def infer_shapes(self, node, input_shapes):
        (s,) = input_shapes
        self._check(node, s)
        return [tuple(s)]

    def weight_shapes(self, node, input_shapes):
        return [()] if node.attrs["channel_shared"] else [(input_shapes[0][1],)]

    def run(self, node, inputs, weights):
        (x,), (scale,) = inputs, weights
        self._check(node, x.shape)
        dt = x.dtype.type
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, -1)
        eps = dt(node.attrs["eps"])
        if node.attrs["across_spatial"]:
            norm = np.sqrt((x3 * x3).reshape(n, -1).sum(axis=1) + eps)        # (n,)
            inv = (1.0 / norm.astype(np.float64)).astype(x.dtype)
            y = x3 * inv[:, None, None]
        else:
            norm = np.sqrt((x3 * x3).sum(axis=1) + eps)                        # (n, spatial)
            y = x3 / norm[:, None, :]
        if node.attrs["channel_shared"]:
            y = y * scale.reshape(())
        else:
            y = y * scale.reshape(1, c, 1)
        return [y.reshape(x.shape)]


# ---------------------------------------------------------------------------------------------
def prior_box_aspect_ratios(aspect_ratio, flip) -> list:
    """The fork's aspect-ratio list: 1 first, then each new ratio (and 1/ratio with flip),
    skipping ratios within 1e-6 of one already listed. Values are float32, like the fork's."""
    ratios = [_F32(1.0)]
    for ar in aspect_ratio:
        ar = _F32(ar)
        if any(float(abs(ar - r)) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if flip:
            ratios.append(_F32(1.0 / float(ar)))
    return ratios


def prior_box_sizes(attrs) -> list[tuple]:
    """(width, height) in pixels of each prior at one location, in the fork's order (float32)."""
    ratios = prior_box_aspect_ratios(attrs["aspect_ratio"], attrs["flip"])
    max_sizes = list(attrs["max_size"])
    sizes = []
    for s, min_size in enumerate(attrs["min_size"]):
        m = int(_F32(min_size))                     # the fork keeps sizes in int variables
        sizes.append((_F32(m), _F32(m)))
        if max_sizes:
            side = _F32(math.sqrt(m * int(_F32(max_sizes[s]))))
            sizes.append((side, side))
        for ar in ratios:
            if abs(float(ar) - 1.0) < 1e-6:
                continue
            r = math.sqrt(float(ar))
            sizes.append((_F32(m * r), _F32(m / r)))
    return sizes


def num_priors(attrs) -> int:
    """Priors per feature-map location."""
    ratios = prior_box_aspect_ratios(attrs["aspect_ratio"], attrs["flip"])
    return len(ratios) * len(attrs["min_size"]) + len(attrs["max_size"])


@register
class PriorBox(OpDef):
    type = "PriorBox"
    attrs = (Attr("min_size", doc="box sizes in pixels, one group of priors each"),
             Attr("max_size", (), "empty, or one per min_size (adds the sqrt(min*max) square)"),
             Attr("aspect_ratio", (), "as written; 1 is implicit and always first"),
             Attr("flip", True),
             Attr("clip", False),
             Attr("variance", (0.1,), "1 value, or 4 (one per coordinate)"),
             Attr("img_h", 0, "0: the image input's height"),
             Attr("img_w", 0, "0: the image input's width"),
             Attr("step_h", 0.0, "0: img_h / feature height"),
             Attr("step_w", 0.0, "0: img_w / feature width"),
             Attr("offset", 0.5))
    min_inputs = 2
    max_inputs = 2

    def _check(self, node, feat, img):
        a = node.attrs
        if len(feat) != 4 or len(img) != 4:
            raise self.shape_error(node, f"needs 4-d feature map and image inputs, got "
                                         f"{tuple(feat)} and {tuple(img)}")
        if not len(a["min_size"]) or any(m <= 0 for m in a["min_size"]):
            raise self.shape_error(node, f"min_size {list(a['min_size'])} must be given and "
                                         "positive")
        if len(a["max_size"]):
            if len(a["max_size"]) != len(a["min_size"]):
                raise self.shape_error(node, f"{len(a['max_size'])} max_size(s) for "
                                             f"{len(a['min_size'])} min_size(s)")
            for lo, hi in zip(a["min_size"], a["max_size"]):
                if not hi > lo:
                    raise self.shape_error(node, f"max_size {hi} must exceed min_size {lo}")
        if any(r <= 0 for r in a["aspect_ratio"]):
            raise self.shape_error(node, f"aspect_ratio {list(a['aspect_ratio'])} must be "
                                         "positive")
        if len(a["variance"]) not in (1, 4) or any(v <= 0 for v in a["variance"]):
            raise self.shape_error(node, f"variance {list(a['variance'])} must be 1 or 4 "
                                         "positive values")
        if min(a["img_h"], a["img_w"], a["step_h"], a["step_w"]) < 0:
            raise self.shape_error(node, "img_h, img_w, step_h and step_w must not be negative")

    def infer_shapes(self, node, input_shapes):
        feat, img = input_shapes
        self._check(node, feat, img)
        return [(1, 2, feat[2] * feat[3] * num_priors(node.attrs) * 4)]

    def run(self, node, inputs, weights):
        feat, img = inputs
        self._check(node, feat.shape, img.shape)
        a = node.attrs
        layer_h, layer_w = feat.shape[2:]
        img_h, img_w = a["img_h"], a["img_w"]
        if img_h == 0 or img_w == 0:
            img_h, img_w = img.shape[2:]
        if a["step_h"] == 0 or a["step_w"] == 0:
            step_h, step_w = _F32(img_h) / _F32(layer_h), _F32(img_w) / _F32(layer_w)
        else:
            step_h, step_w = _F32(a["step_h"]), _F32(a["step_w"])
        off = _F32(a["offset"])
        cy = (np.arange(layer_h, dtype=_F32) + off) * step_h                 # float32, as the fork
        cx = (np.arange(layer_w, dtype=_F32) + off) * step_w
        sizes = np.array(prior_box_sizes(a), dtype=_F32)                     # (P, 2)
        half_w = sizes[:, 0].astype(np.float64) / 2.0
        half_h = sizes[:, 1].astype(np.float64) / 2.0
        cx64 = cx.astype(np.float64)[None, :, None]
        cy64 = cy.astype(np.float64)[:, None, None]
        shape = (layer_h, layer_w, len(sizes))
        boxes = np.stack([np.broadcast_to((cx64 - half_w) / img_w, shape),
                          np.broadcast_to((cy64 - half_h) / img_h, shape),
                          np.broadcast_to((cx64 + half_w) / img_w, shape),
                          np.broadcast_to((cy64 + half_h) / img_h, shape)], axis=-1)
        boxes = boxes.astype(feat.dtype).reshape(-1)
        if a["clip"]:
            boxes = np.minimum(np.maximum(boxes, feat.dtype.type(0)), feat.dtype.type(1))
        var = np.array([_F32(v) for v in a["variance"]], dtype=_F32).astype(feat.dtype)
        variances = np.broadcast_to(var, (boxes.size // 4, 4) if len(var) == 4 else
                                    (boxes.size,)).reshape(-1)
        return [np.stack([boxes, variances])[None]]


# ---------------------------------------------------------------------------------------------
@register
class DetectionOutput(OpDef):
    type = "DetectionOutput"
    attrs = (Attr("num_classes"),
             Attr("share_location", True),
             Attr("background_label_id", 0, "-1: no background class"),
             Attr("nms_threshold", 0.3),
             Attr("top_k", -1, "NMS candidates per class (-1: all)"),
             Attr("eta", 1.0, "adaptive NMS factor"),
             Attr("code_type", "CORNER", "CORNER, CENTER_SIZE or CORNER_SIZE"),
             Attr("variance_encoded_in_target", False),
             Attr("keep_top_k", -1, "detections kept per image (-1: all)"),
             Attr("confidence_threshold", None, "None: -FLT_MAX (every score counts)"))
    min_inputs = 3
    max_inputs = 3

    def _geometry(self, node, loc, conf, prior):
        """(N, num_priors, num_loc_classes), after checking every shape and attribute."""
        a = node.attrs
        nc = int(a["num_classes"])
        if nc < 1:
            raise self.shape_error(node, f"num_classes {nc} must be at least 1")
        if a["code_type"] not in CODE_TYPES:
            raise self.shape_error(node, f"unknown code_type {a['code_type']!r}")
        if a["nms_threshold"] < 0:
            raise self.shape_error(node, f"nms_threshold {a['nms_threshold']} must not be "
                                         "negative")
        if not 0 < a["eta"] <= 1:
            raise self.shape_error(node, f"eta {a['eta']} must be in (0, 1]")
        if len(prior) != 3 or prior[1] != 2 or prior[2] % 4:
            raise self.shape_error(node, f"prior input must be (1, 2, num_priors*4), got "
                                         f"{tuple(prior)}")
        p = prior[2] // 4
        nl = 1 if a["share_location"] else nc
        for name, s, want in (("loc", loc, p * nl * 4), ("conf", conf, p * nc)):
            if len(s) < 2 or s[1] != want or math.prod(s[1:]) != want:
                raise self.shape_error(node, f"{name} input {tuple(s)} must be (N, {want}) for "
                                             f"{p} priors and {nc} classes")
        if conf[0] != loc[0]:
            raise self.shape_error(node, f"loc has {loc[0]} images, conf has {conf[0]}")
        return loc[0], p, nl

    def max_rows(self, node, input_shapes) -> int:
        a = node.attrs
        n, p, _ = self._geometry(node, *input_shapes)
        nc, bg = int(a["num_classes"]), a["background_label_id"]
        classes = nc - (1 if 0 <= bg < nc else 0)
        per_class = p if a["top_k"] < 0 else min(a["top_k"], p)
        per_image = classes * per_class
        if a["keep_top_k"] > -1:
            per_image = min(per_image, a["keep_top_k"])
        return max(n, n * per_image)

    def infer_shapes(self, node, input_shapes):
        return [(1, 1, self.max_rows(node, input_shapes), 7)]

    def run(self, node, inputs, weights):
        a = node.attrs
        loc, conf, prior = inputs
        n, p, nl = self._geometry(node, loc.shape, conf.shape, prior.shape)
        nc, bg = int(a["num_classes"]), a["background_label_id"]
        dt = loc.dtype
        loc = loc.reshape(n, p, nl, 4)
        conf = conf.reshape(n, p, nc)
        flat_prior = prior.reshape(-1)
        prior_boxes = flat_prior[:p * 4].reshape(p, 4)
        prior_vars = flat_prior[p * 4:p * 8].reshape(p, 4)
        if a["code_type"] != "CORNER":
            widths = prior_boxes[:, 2] - prior_boxes[:, 0]
            heights = prior_boxes[:, 3] - prior_boxes[:, 1]
            if not (np.all(widths > 0) and np.all(heights > 0)):
                raise EdgebrewError(f"layer '{node.name}' (DetectionOutput): a prior box has no "
                                    f"width or height, which {a['code_type']} decoding cannot "
                                    "use")
        conf_thr = dt.type(-FLT_MAX if a["confidence_threshold"] is None
                           else a["confidence_threshold"])
        rows = []
        for i in range(n):
            boxes = {}
            for c in range(nl):
                if nl > 1 and c == bg:
                    continue
                boxes[c] = decode_boxes(prior_boxes, prior_vars, loc[i, :, c],
                                        a["code_type"], a["variance_encoded_in_target"])
            kept = {}                                     # label -> prior indices, in order
            for c in range(nc):
                if c == bg:
                    continue
                b = boxes[0 if nl == 1 else c]
                kept[c] = nms_fast(b, conf[i, :, c], conf_thr, a["nms_threshold"], a["eta"],
                                   a["top_k"])
            num_det = sum(len(v) for v in kept.values())
            if a["keep_top_k"] > -1 and num_det > a["keep_top_k"]:
                pairs = [(conf[i, j, c], c, j) for c, js in kept.items() for j in js]
                order = stable_argsort_desc(np.array([s for s, _, _ in pairs], dtype=dt))
                chosen = [pairs[k] for k in order[:a["keep_top_k"]]]
                kept = {}
                for _, c, j in chosen:
                    kept.setdefault(c, []).append(j)
            for c in sorted(kept):
                b = boxes[0 if nl == 1 else c]
                for j in kept[c]:
                    rows.append([i, c, conf[i, j, c], *b[j]])
        if not rows:
            out = np.full((n, 7), -1, dtype=dt)
            out[:, 0] = np.arange(n)
        else:
            out = np.array(rows, dtype=np.float64).astype(dt)  # exact: values are in dt
        return [out.reshape(1, 1, -1, 7)]


def decode_boxes(prior, var, loc, code_type, variance_encoded_in_target):
    """The fork's DecodeBBox for P priors at once: arrays (P, 4) in, (P, 4) out (input dtype)."""
    dt = loc.dtype
    prior, var = prior.astype(dt, copy=False), var.astype(dt, copy=False)
    if variance_encoded_in_target:
        var = np.ones_like(var)
    if code_type == "CORNER":
        if variance_encoded_in_target:
            return prior + loc
        return prior + var * loc
    pw = prior[:, 2] - prior[:, 0]
    ph = prior[:, 3] - prior[:, 1]
    if code_type == "CORNER_SIZE":
        if variance_encoded_in_target:
            d = loc * np.stack([pw, ph, pw, ph], axis=1)
        else:
            d = var * loc * np.stack([pw, ph, pw, ph], axis=1)
        return prior + d
    # CENTER_SIZE
    pcx = (prior[:, 0] + prior[:, 2]) / dt.type(2)
    pcy = (prior[:, 1] + prior[:, 3]) / dt.type(2)
    if variance_encoded_in_target:
        cx = loc[:, 0] * pw + pcx
        cy = loc[:, 1] * ph + pcy
        ew, eh = loc[:, 2], loc[:, 3]
    else:
        cx = var[:, 0] * loc[:, 0] * pw + pcx
        cy = var[:, 1] * loc[:, 1] * ph + pcy
        ew, eh = var[:, 2] * loc[:, 2], var[:, 3] * loc[:, 3]
    # exp and the final halving happen in double in the fork; round once to the dtype.
    w = (np.exp(ew.astype(np.float64)) * pw.astype(np.float64)).astype(dt)
    h = (np.exp(eh.astype(np.float64)) * ph.astype(np.float64)).astype(dt)
    cx64, cy64 = cx.astype(np.float64), cy.astype(np.float64)
    w64, h64 = w.astype(np.float64) / 2.0, h.astype(np.float64) / 2.0
    return np.stack([cx64 - w64, cy64 - h64, cx64 + w64, cy64 + h64], axis=1).astype(dt)


def box_sizes(b):
    """The fork's BBoxSize (normalized): width * height, 0 for a box with xmax<xmin or ymax<ymin."""
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.where((w < 0) | (h < 0), b.dtype.type(0), w * h)


def jaccard(box, others, box_size, other_sizes):
    """The fork's JaccardOverlap of one box against several (sizes precomputed, as the fork
    stores them in each decoded box)."""
    iw = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    ih = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    hit = (iw > 0) & (ih > 0)
    inter = np.where(hit, iw * ih, 0)
    union = np.where(hit, box_size + other_sizes - inter, 1)
    return np.where(hit, inter / union, 0)


def stable_argsort_desc(scores):
    """Indices ordering scores from highest to lowest, ties in their original order."""
    return np.argsort(-scores, kind="stable")


def nms_fast(boxes, scores, score_threshold, nms_threshold, eta, top_k):
    """The fork's ApplyNMSFast: indices kept, in descending-score order."""
    cand = np.nonzero(scores > score_threshold)[0]
    cand = cand[stable_argsort_desc(scores[cand])]
    if top_k > -1:
        cand = cand[:top_k]
    sizes = box_sizes(boxes)
    threshold = _F32(nms_threshold)           # a float in the fork, whatever the Dtype
    eta = _F32(eta)
    kept: list[int] = []
    for idx in cand:
        keep = True
        if kept:
            ov = jaccard(boxes[idx], boxes[kept], sizes[idx], sizes[kept])
            keep = bool(np.all(ov <= threshold))
        if keep:
            kept.append(int(idx))
            if eta < 1 and threshold > 0.5:
                threshold = _F32(threshold * eta)
    return kept
