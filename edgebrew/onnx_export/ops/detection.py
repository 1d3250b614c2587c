"""SSD layers: Normalize, PriorBox, DetectionOutput.

* Normalize -> ReduceSum of squares (over C, H, W per image, or over C per position), Sqrt of
  ``sum + eps``; across_spatial multiplies by the reciprocal (Caffe rounds it first), per position
  divides; then Mul by the scale (scalar or per channel).
* PriorBox -> a Constant: its output depends only on the shapes of its inputs, so the IR's
  reference implementation computes it at export time.
* DetectionOutput -> an exact subgraph (see ``detection_output``): decode in Caffe's operation
  order (the fork's double-precision steps in double), Caffe's NMS ``top_k`` as a TopK pre-cut of
  the scores, per-class NonMaxSuppression (ONNX suppresses when IoU > threshold and keeps scores
  strictly above the score threshold: Caffe's rules; boxes with xmax < xmin or ymax < ymin, which
  Caffe never overlaps, are collapsed to points so that ONNX cannot overlap them either),
  ``keep_top_k`` as a per-image stable rank, and Caffe's row order and no-detection rows.
  Adaptive NMS (``eta < 1`` with a threshold above 0.5) has no ONNX equivalent: that layer is
  refused, and ``detection_output="inputs"`` exports the net up to its inputs instead.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..builders import channel_shape, reduce_sum, reshape_to, unsqueeze
from ..registry import maps

f32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)


@maps("Normalize", attrs=("across_spatial", "channel_shared", "eps"))
def normalize(ctx, node):
    a, x, out = node.attrs, node.inputs[0], node.outputs[0]
    rank = len(ctx.shape(x))
    sq = ctx.emit("Mul", [x, x], ctx.fresh("square"))
    axes = list(range(1, rank)) if a["across_spatial"] else [1]
    ss = reduce_sum(ctx, sq, axes, True, ctx.fresh("sum_sq"))
    norm = ctx.emit("Sqrt", [ctx.emit("Add", [ss, ctx.scalar(f32(a["eps"]), "eps")])],
                    ctx.fresh("norm"))
    if a["across_spatial"]:
        inv = ctx.emit("Reciprocal", [norm], ctx.fresh("inv_norm"))
        y = ctx.emit("Mul", [x, inv], ctx.fresh("normalized"))
    else:
        y = ctx.emit("Div", [x, norm], ctx.fresh("normalized"))
    scale = ctx.weight_array(node, 0)
    scale = scale.reshape(()) if a["channel_shared"] else channel_shape(scale, rank)
    ctx.emit("Mul", [y, ctx.weight(node, 0, scale)], out)


def prior_box_value(node, feat_shape, img_shape) -> np.ndarray:
    """PriorBox's output for inputs of these shapes (the values of the inputs do not matter)."""
    (value,) = node.op.run(node, [np.zeros(feat_shape, f32), np.zeros(img_shape, f32)], [])
    return np.asarray(value, f32)


@maps("PriorBox", attrs=("min_size", "max_size", "aspect_ratio", "flip", "clip", "variance",
                         "img_h", "img_w", "step_h", "step_w", "offset"))
def prior_box(ctx, node):
    value = prior_box_value(node, ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1]))
    ctx.emit("Constant", [], node.outputs[0],
             value=numpy_helper.from_array(value, node.outputs[0] + "/value"))


# ----------------------------------------------------------------------- DetectionOutput
def detection_output_exact(node) -> str | None:
    """Why the node cannot be exported exactly (None when it can)."""
    a = node.attrs
    if f32(a["eta"]) < 1 and f32(a["nms_threshold"]) > 0.5:
        return (f"adaptive NMS (eta {a['eta']} < 1 with nms_threshold {a['nms_threshold']} > "
                "0.5) lowers the threshold after every kept box; ONNX NonMaxSuppression has no "
                "such mode")
    return None


@maps("DetectionOutput", attrs=("num_classes", "share_location", "background_label_id",
                                "nms_threshold", "top_k", "eta", "code_type",
                                "variance_encoded_in_target", "keep_top_k",
                                "confidence_threshold"))
def detection_output(ctx, node):
    why = detection_output_exact(node)
    if why:
        raise ctx.error(f"{why}. Export it with detection_output='inputs' (CLI: "
                        "--detection-inputs) to get the net up to this layer's inputs "
                        f"({', '.join(dict.fromkeys(node.inputs))}) as outputs, and run the "
                        "detection step outside ONNX")
    a = node.attrs
    loc, conf, prior = node.inputs
    n, p, nl = node.op._geometry(node, ctx.shape(loc), ctx.shape(conf), ctx.shape(prior))
    nc, bg = int(a["num_classes"]), int(a["background_label_id"])
    _check_priors(ctx, node, prior, p)

    boxes = _decode(ctx, node, loc, prior, p, nl)                       # (N, nl, P, 4)
    scores = ctx.emit("Transpose", [reshape_to(ctx, conf, [0, p, nc], ctx.fresh("conf"))],
                      ctx.fresh("scores"), perm=[0, 2, 1])              # (N, nc, P)

    # Candidates: background masked out, Caffe's top_k pre-cut (before suppression).
    cand = scores
    if 0 <= bg < nc:
        mask = np.zeros((1, nc, 1), f32)
        mask[0, bg, 0] = -np.inf
        cand = ctx.emit("Add", [scores, ctx.const(mask, "background_mask")],
                        ctx.fresh("candidate_scores"))
    top_k = int(a["top_k"])
    if -1 < top_k < p:
        vals, idx = ctx.emit("TopK", [cand, ctx.ints([top_k], "top_k")],
                             [ctx.fresh("top_scores"), ctx.fresh("top_indices")], axis=2,
                             largest=1, sorted=1)
        floor = ctx.emit("ConstantOfShape", [ctx.emit("Shape", [cand])], ctx.fresh("no_scores"),
                         value=helper.make_tensor("value", TensorProto.FLOAT, [1], [-np.inf]))
        cand = ctx.emit("ScatterElements", [floor, idx, vals], ctx.fresh("top_k_scores"), axis=2)

    flat_boxes = reshape_to(ctx, boxes, [-1, p, 4], ctx.fresh("boxes"))      # (N*nl, P, 4)
    nms_boxes = flat_boxes
    if a["code_type"] != "CENTER_SIZE":
        nms_boxes = _collapse_inverted(ctx, flat_boxes)
    if nl > 1:
        cand = reshape_to(ctx, cand, [-1, 1, p], ctx.fresh("nms_scores"))     # (N*nc, 1, P)
    conf_thr = -FLT_MAX if a["confidence_threshold"] is None else a["confidence_threshold"]
    sel = ctx.emit("NonMaxSuppression",
                   [nms_boxes, cand, ctx.ints([p], "max_per_class"),
                    ctx.const(np.array([a["nms_threshold"]], f32), "iou_threshold"),
                    ctx.const(np.array([conf_thr], f32), "score_threshold")],
                   ctx.fresh("selected"), center_point_box=0)                 # (K, 3)

    n_img = ctx.emit("Gather", [ctx.emit("Shape", [loc]), ctx.const(np.array(0, np.int64),
                                                                     "zero_i", np.int64)],
                     ctx.fresh("num_images"), axis=0)                         # scalar
    if int(a["keep_top_k"]) > -1:
        sel = _keep_top_k(ctx, sel, scores, nc, nl, n_img, int(a["keep_top_k"]))
    _rows(ctx, node, sel, scores, flat_boxes, nc, nl, n_img)


def _col(ctx, sel, i, hint):
    """Column i of the (K, 3) selection as a (K,) int64 tensor."""
    return ctx.emit("Gather", [sel, ctx.const(np.array(i, np.int64), f"col{i}", np.int64)],
                    ctx.fresh(hint), axis=1)


def _image_label(ctx, sel, nc, nl):
    b, c = _col(ctx, sel, 0, "sel_batch"), _col(ctx, sel, 1, "sel_class")
    if nl == 1:
        return b, c
    k = ctx.const(np.array(nc, np.int64), "num_classes", np.int64)
    return (ctx.emit("Div", [b, k], ctx.fresh("sel_image")),
            ctx.emit("Mod", [b, k], ctx.fresh("sel_label")))


def _score_of(ctx, scores, image, label, box):
    idx = ctx.emit("Concat", [unsqueeze(ctx, t, [1]) for t in (image, label, box)],
                   ctx.fresh("score_index"), axis=1)
    return ctx.emit("GatherND", [scores, idx], ctx.fresh("sel_score"))


def _keep_top_k(ctx, sel, scores, nc, nl, n_img, keep_top_k):
    """Rows of each image ranked by descending score (ties: earlier row first, i.e. label then
    NMS order, as the reference's stable sort); rows ranked keep_top_k or later are dropped.
    The kept rows keep their order (by label, then NMS order), as Caffe outputs them."""
    image, label = _image_label(ctx, sel, nc, nl)
    box = _col(ctx, sel, 2, "sel_box")
    s = _score_of(ctx, scores, image, label, box)                           # (K,)
    k = ctx.emit("Shape", [s], ctx.fresh("num_selected"))                    # (1,)
    _, order = ctx.emit("TopK", [s, k], [ctx.fresh("sorted_scores"), ctx.fresh("order")],
                        axis=0, largest=1, sorted=1)
    img_sorted = ctx.emit("Gather", [image, order], ctx.fresh("sorted_image"), axis=0)
    one = ctx.const(np.array(1, np.int64), "one_i", np.int64)
    zero = ctx.const(np.array(0, np.int64), "zero_i", np.int64)
    images = ctx.emit("Range", [zero, n_img, one], ctx.fresh("image_ids"))   # (N,)
    onehot = ctx.emit("Cast", [ctx.emit("Equal", [unsqueeze(ctx, img_sorted, [1]), images])],
                      ctx.fresh("onehot"), to=TensorProto.INT64)             # (K, N)
    counts = ctx.emit("CumSum", [onehot, zero], ctx.fresh("running_count"))
    rank = ctx.emit("GatherElements", [counts, unsqueeze(ctx, img_sorted, [1])],
                    ctx.fresh("rank_plus_one"), axis=1)                      # (K, 1)
    keep_sorted = ctx.emit("LessOrEqual", [rank, ctx.const(np.array(keep_top_k, np.int64),
                                                           "keep_top_k", np.int64)],
                           ctx.fresh("keep_sorted"))
    keep_sorted = reshape_to(ctx, ctx.emit("Cast", [keep_sorted], to=TensorProto.INT64), [-1],
                             ctx.fresh("keep_sorted_i"))
    positions = ctx.emit("Range", [zero, ctx.emit("Reshape", [k, ctx.ints([], "scalar_shape")]),
                                   one], ctx.fresh("positions"))
    inverse = ctx.emit("ScatterElements", [positions, order, positions], ctx.fresh("inverse"),
                       axis=0)
    keep = ctx.emit("Cast", [ctx.emit("Gather", [keep_sorted, inverse], axis=0)],
                    ctx.fresh("keep"), to=TensorProto.BOOL)
    return ctx.emit("Compress", [sel, keep], ctx.fresh("kept"), axis=0)


def _rows(ctx, node, sel, scores, boxes, nc, nl, n_img):
    """[image_id, label, score, xmin, ymin, xmax, ymax] rows in Caffe's order, or one
    ``[i, -1, ...]`` row per image when nothing was detected at all."""
    image, label = _image_label(ctx, sel, nc, nl)
    box = _col(ctx, sel, 2, "sel_box")
    s = _score_of(ctx, scores, image, label, box)
    bidx = ctx.emit("Concat", [unsqueeze(ctx, _col(ctx, sel, 0, "sel_batch"), [1]),
                               unsqueeze(ctx, box, [1])], ctx.fresh("box_index"), axis=1)
    coords = ctx.emit("GatherND", [boxes, bidx], ctx.fresh("sel_coords"))   # (K, 4)
    fl = TensorProto.FLOAT
    cols = [unsqueeze(ctx, ctx.emit("Cast", [image], to=fl), [1]),
            unsqueeze(ctx, ctx.emit("Cast", [label], to=fl), [1]),
            unsqueeze(ctx, s, [1]), coords]
    rows = ctx.emit("Concat", cols, ctx.fresh("rows"), axis=1)               # (K, 7)
    # One [i, -1, -1, -1, -1, -1, -1] row per image, used only when K == 0.
    one = ctx.const(np.array(1, np.int64), "one_i", np.int64)
    zero = ctx.const(np.array(0, np.int64), "zero_i", np.int64)
    ids = ctx.emit("Cast", [ctx.emit("Range", [zero, n_img, one])], to=fl)
    minus = ctx.emit("ConstantOfShape", [ctx.emit("Concat", [unsqueeze(ctx, n_img, [0]),
                                                             ctx.ints([6], "six")], axis=0)],
                     ctx.fresh("minus_ones"),
                     value=helper.make_tensor("value", fl, [1], [-1.0]))
    empty_rows = ctx.emit("Concat", [unsqueeze(ctx, ids, [1]), minus], ctx.fresh("empty_rows"),
                          axis=1)
    both = ctx.emit("Concat", [rows, empty_rows], ctx.fresh("rows_or_empty"), axis=0)
    k = ctx.emit("Gather", [ctx.emit("Shape", [rows]), zero], ctx.fresh("num_rows"), axis=0)
    end = ctx.emit("Where", [ctx.emit("Greater", [k, zero]), k, n_img], ctx.fresh("end"))
    picked = ctx.emit("Slice", [both, ctx.ints([0], "zero_1"), unsqueeze(ctx, end, [0]),
                                ctx.ints([0], "zero_1")], ctx.fresh("picked"))
    reshape_to(ctx, picked, [1, 1, -1, 7], node.outputs[0])


def _decode(ctx, node, loc, prior, p, nl):
    """The fork's DecodeBBox over every image, location class and prior: (N, nl, P, 4)."""
    a = node.attrs
    code, enc = a["code_type"], bool(a["variance_encoded_in_target"])
    loc4 = ctx.emit("Transpose", [reshape_to(ctx, loc, [0, p, nl, 4], ctx.fresh("loc"))],
                    ctx.fresh("loc_by_class"), perm=[0, 2, 1, 3])           # (N, nl, P, 4)
    pr = reshape_to(ctx, prior, [2, p, 4], ctx.fresh("priors"))
    pbox = ctx.emit("Gather", [pr, ctx.const(np.array(0, np.int64), "zero_i", np.int64)],
                    ctx.fresh("prior_boxes"), axis=0)                        # (P, 4)
    pvar = ctx.emit("Gather", [pr, ctx.const(np.array(1, np.int64), "one_i", np.int64)],
                    ctx.fresh("prior_variances"), axis=0)
    out = ctx.fresh("decoded")
    if code == "CORNER":
        d = loc4 if enc else ctx.emit("Mul", [pvar, loc4], ctx.fresh("var_loc"))
        return ctx.emit("Add", [pbox, d], out)
    px1, py1, px2, py2 = _split4(ctx, pbox, 1, "prior")                      # (P, 1) each
    pw = ctx.emit("Sub", [px2, px1], ctx.fresh("prior_w"))
    ph = ctx.emit("Sub", [py2, py1], ctx.fresh("prior_h"))
    if code == "CORNER_SIZE":
        size = ctx.emit("Concat", [pw, ph, pw, ph], ctx.fresh("prior_size"), axis=1)  # (P, 4)
        d = loc4 if enc else ctx.emit("Mul", [pvar, loc4], ctx.fresh("var_loc"))
        return ctx.emit("Add", [pbox, ctx.emit("Mul", [d, size])], out)
    # CENTER_SIZE
    two = ctx.scalar(2.0, "two")
    pcx = ctx.emit("Div", [ctx.emit("Add", [px1, px2]), two], ctx.fresh("prior_cx"))
    pcy = ctx.emit("Div", [ctx.emit("Add", [py1, py2]), two], ctx.fresh("prior_cy"))
    l0, l1, l2, l3 = _split4(ctx, loc4, 3, "loc")                            # (N, nl, P, 1)
    if enc:
        ex, ey, ew, eh = l0, l1, l2, l3
    else:
        v0, v1, v2, v3 = _split4(ctx, pvar, 1, "var")
        ex, ey = ctx.emit("Mul", [v0, l0]), ctx.emit("Mul", [v1, l1])
        ew, eh = ctx.emit("Mul", [v2, l2]), ctx.emit("Mul", [v3, l3])
    cx = ctx.emit("Add", [ctx.emit("Mul", [ex, pw]), pcx], ctx.fresh("cx"))
    cy = ctx.emit("Add", [ctx.emit("Mul", [ey, ph]), pcy], ctx.fresh("cy"))
    dbl, fl = TensorProto.DOUBLE, TensorProto.FLOAT

    def in_double(t):
        return ctx.emit("Cast", [t], to=dbl)

    # exp and the halving are double in the fork; each value is rounded to float once.
    w = ctx.emit("Cast", [ctx.emit("Mul", [ctx.emit("Exp", [in_double(ew)]), in_double(pw)])],
                 ctx.fresh("w"), to=fl)
    h = ctx.emit("Cast", [ctx.emit("Mul", [ctx.emit("Exp", [in_double(eh)]), in_double(ph)])],
                 ctx.fresh("h"), to=fl)
    two_d = ctx.const(np.array(2.0, np.float64), "two_d", np.float64)
    hw = ctx.emit("Div", [in_double(w), two_d], ctx.fresh("half_w"))
    hh = ctx.emit("Div", [in_double(h), two_d], ctx.fresh("half_h"))
    cxd, cyd = in_double(cx), in_double(cy)
    corners = [ctx.emit("Sub", [cxd, hw]), ctx.emit("Sub", [cyd, hh]),
               ctx.emit("Add", [cxd, hw]), ctx.emit("Add", [cyd, hh])]
    return ctx.emit("Cast", [ctx.emit("Concat", corners, axis=3)], out, to=fl)


def _split4(ctx, x, axis, hint):
    return ctx.emit("Split", [x, ctx.ints([1, 1, 1, 1], "split4")],
                    [ctx.fresh(f"{hint}_{c}") for c in ("x1", "y1", "x2", "y2")], axis=axis)


def _collapse_inverted(ctx, boxes):
    """Boxes with xmax < xmin or ymax < ymin become the point (xmin, ymin): Caffe's
    JaccardOverlap gives them no overlap, while ONNX NMS would reorder their corners."""
    x1, y1, x2, y2 = _split4(ctx, boxes, 2, "nms")
    bad = ctx.emit("Or", [ctx.emit("Less", [x2, x1]), ctx.emit("Less", [y2, y1])],
                   ctx.fresh("inverted"))
    fixed = ctx.emit("Concat", [x1, y1, ctx.emit("Where", [bad, x1, x2]),
                                ctx.emit("Where", [bad, y1, y2])], axis=2)
    return fixed


def _check_priors(ctx, node, prior, p):
    """The reference refuses CENTER_SIZE / CORNER_SIZE decoding with an empty prior box; when
    the priors are constant (PriorBox outputs), refuse the export the same way."""
    if node.attrs["code_type"] == "CORNER":
        return
    value = constant_value(ctx, prior)
    if value is None:
        return
    boxes = value.reshape(-1)[:p * 4].reshape(p, 4)
    if not (np.all(boxes[:, 2] - boxes[:, 0] > 0) and np.all(boxes[:, 3] - boxes[:, 1] > 0)):
        raise ctx.error(f"a prior box has no width or height, which {node.attrs['code_type']} "
                        "decoding cannot use")


_SHAPE_ONLY = {"Concat", "Flatten", "Reshape", "Permute", "Split", "Dropout", "Slice", "Crop"}


def constant_value(ctx, tensor, _depth=0):
    """The value of a tensor computed from PriorBox outputs only (through plumbing ops), or
    None when it depends on data."""
    producers = ctx.graph.producers()
    node = producers.get(tensor)
    if node is None or _depth > 64:
        return None
    if node.op_type == "PriorBox":
        return prior_box_value(node, ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1]))
    if node.op_type not in _SHAPE_ONLY:
        return None
    if node.op_type == "Crop":
        return None
    inputs = []
    for t in node.inputs:
        v = constant_value(ctx, t, _depth + 1)
        if v is None:
            return None
        inputs.append(v)
    outs = node.op.run(node, inputs, [])
    return np.asarray(outs[node.outputs.index(tensor)])
