"""SSD fork layers (Normalize, PriorBox, DetectionOutput) against hand-worked examples and
direct loops written from the weiliu89/caffe ssd-branch sources."""
import math

import numpy as np
import pytest

from edgebrew.errors import ShapeError, UnsupportedLayerError
from helpers import one_op_graph, run_op

DTYPES = [np.float32, np.float64]


# -- Normalize ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_across_spatial_shared_by_hand(dtype):
    x = np.array([3., 0., 4., 0.]).reshape(1, 2, 1, 2)   # sum of squares 25 -> norm 5
    (y,) = run_op("Normalize", {}, [x], [np.array(2.0)], dtype=dtype)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.reshape(-1), [1.2, 0., 1.6, 0.], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_per_position_per_channel_by_hand(dtype):
    x = np.array([3., 0., 4., 2.]).reshape(1, 2, 1, 2)   # position 0: (3, 4); position 1: (0, 2)
    attrs = dict(across_spatial=False, channel_shared=False)
    (y,) = run_op("Normalize", attrs, [x], [np.array([1.0, 10.0])], dtype=dtype)
    np.testing.assert_allclose(y.reshape(2, 2), [[0.6, 0.0], [8.0, 10.0]], rtol=1e-6)


def test_normalize_zeros_stay_finite():
    for across in (True, False):
        (y,) = run_op("Normalize", dict(across_spatial=across), [np.zeros((1, 3, 2, 2))],
                      [np.array(1.0)])
        assert np.all(y == 0)


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_normalize_direct_loops(across, shared):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 2, 3))
    scale = np.array(1.5) if shared else rng.standard_normal(3)
    eps = 1e-3
    (y,) = run_op("Normalize", dict(across_spatial=across, channel_shared=shared, eps=eps),
                  [x], [scale])
    want = np.empty_like(x)
    n, c, h, w = x.shape
    for b in range(n):
        total = sum(x[b, k, i, j] ** 2 for k in range(c) for i in range(h) for j in range(w))
        for k in range(c):
            s = float(scale) if shared else scale[k]
            for i in range(h):
                for j in range(w):
                    if across:
                        norm = math.sqrt(total + eps)
                    else:
                        norm = math.sqrt(sum(x[b, q, i, j] ** 2 for q in range(c)) + eps)
                    want[b, k, i, j] = x[b, k, i, j] / norm * s
    np.testing.assert_allclose(y, want, rtol=1e-12)


def test_normalize_weight_shapes_follow_the_fork():
    g = one_op_graph("Normalize", dict(channel_shared=False), [(1, 5, 2, 2)],
                     weights=[np.ones(5)])
    assert g.weight_shapes(g.nodes[0]) == [(5,)]
    g = one_op_graph("Normalize", {}, [(1, 5, 2, 2)], weights=[np.array(1.0)])
    assert g.weight_shapes(g.nodes[0]) == [()]             # a 0-axis blob in the fork
    with pytest.raises(ShapeError, match="needs \\(\\)"):
        one_op_graph("Normalize", {}, [(1, 5, 2, 2)], weights=[np.ones(1)])


# -- PriorBox ----------------------------------------------------------------------------------
def direct_prior_box(attrs, layer_h, layer_w, img_h, img_w):
    """Straight from prior_box_layer.cpp, in Python floats."""
    a = dict(max_size=(), aspect_ratio=(), flip=True, clip=False, variance=(0.1,), img_h=0,
             img_w=0, step_h=0.0, step_w=0.0, offset=0.5)
    a.update(attrs)
    if a["img_h"] and a["img_w"]:
        img_h, img_w = a["img_h"], a["img_w"]
    step_h, step_w = a["step_h"], a["step_w"]
    if not (step_h and step_w):
        step_h, step_w = img_h / layer_h, img_w / layer_w
    ratios = [1.0]
    for ar in a["aspect_ratio"]:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if a["flip"]:
            ratios.append(1.0 / ar)
    coords = []
    for h in range(layer_h):
        for w in range(layer_w):
            cx, cy = (w + a["offset"]) * step_w, (h + a["offset"]) * step_h
            sizes = []
            for s, mn in enumerate(a["min_size"]):
                mn = int(mn)
                sizes.append((mn, mn))
                if a["max_size"]:
                    side = math.sqrt(mn * int(a["max_size"][s]))
                    sizes.append((side, side))
                for ar in ratios:
                    if abs(ar - 1.0) < 1e-6:
                        continue
                    sizes.append((mn * math.sqrt(ar), mn / math.sqrt(ar)))
            for bw, bh in sizes:
                box = [(cx - bw / 2) / img_w, (cy - bh / 2) / img_h,
                       (cx + bw / 2) / img_w, (cy + bh / 2) / img_h]
                if a["clip"]:
                    box = [min(max(v, 0.0), 1.0) for v in box]
                coords.extend(box)
    var = list(a["variance"])
    variances = var * (len(coords) // 4) if len(var) == 4 else var * len(coords)
    return np.array([coords, variances])[None]


SSD_LIKE = dict(min_size=(4.0,), max_size=(9.0,), aspect_ratio=(2.0,), flip=True,
                variance=(0.1, 0.1, 0.2, 0.2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_prior_box_by_hand(dtype):
    feat, img = np.zeros((1, 8, 1, 2)), np.zeros((1, 3, 10, 20))   # step 10, centres (5,5),(15,5)
    (y,) = run_op("PriorBox", SSD_LIKE, [feat, img], dtype=dtype)
    assert y.shape == (1, 2, 2 * 4 * 4) and y.dtype == dtype
    r2 = math.sqrt(2)
    first_location = [
        [0.15, 0.3, 0.35, 0.7],                                     # min_size 4
        [0.1, 0.2, 0.4, 0.8],                                       # sqrt(4 * 9) = 6
        [(5 - 2 * r2) / 20, (5 - r2) / 10, (5 + 2 * r2) / 20, (5 + r2) / 10],   # ar 2
        [(5 - r2) / 20, (5 - 2 * r2) / 10, (5 + r2) / 20, (5 + 2 * r2) / 10],   # ar 1/2
    ]
    boxes = y[0, 0].reshape(2, 4, 4)
    np.testing.assert_allclose(boxes[0], first_location, atol=1e-6)
    np.testing.assert_allclose(boxes[1], np.array(first_location) + [0.5, 0, 0.5, 0],
                               atol=1e-6)
    np.testing.assert_allclose(y[0, 1].reshape(8, 4), [[0.1, 0.1, 0.2, 0.2]] * 8, rtol=1e-7)


def test_prior_box_clip_and_single_variance():
    feat, img = np.zeros((1, 1, 1, 2)), np.zeros((1, 3, 10, 20))
    (y,) = run_op("PriorBox", dict(min_size=(12.0,), clip=True, variance=(0.25,)), [feat, img])
    np.testing.assert_allclose(y[0, 0, :4], [0.0, 0.0, 0.55, 1.0], atol=1e-7)  # -0.05, -0.1, 1.1
    np.testing.assert_array_equal(y[0, 1], [0.25] * 8)


def test_prior_box_explicit_step_and_offset():
    feat, img = np.zeros((1, 1, 2, 2)), np.zeros((1, 3, 16, 16))
    (y,) = run_op("PriorBox", dict(min_size=(4.0,), step_h=8.0, step_w=8.0, offset=0.0),
                  [feat, img])
    boxes = y[0, 0].reshape(4, 4)       # centres (0,0), (8,0), (0,8), (8,8)
    np.testing.assert_allclose(boxes, [[-0.125, -0.125, 0.125, 0.125],
                                       [0.375, -0.125, 0.625, 0.125],
                                       [-0.125, 0.375, 0.125, 0.625],
                                       [0.375, 0.375, 0.625, 0.625]], atol=1e-7)


def test_prior_box_img_size_overrides_the_image_input():
    feat = np.zeros((1, 8, 1, 2))
    (a,) = run_op("PriorBox", SSD_LIKE, [feat, np.zeros((1, 3, 10, 20))])
    (b,) = run_op("PriorBox", dict(SSD_LIKE, img_h=10, img_w=20),
                  [feat, np.zeros((1, 3, 300, 300))])
    np.testing.assert_array_equal(a, b)


def test_prior_box_min_size_is_truncated_to_int():
    feat, img = np.zeros((1, 1, 3, 3)), np.zeros((1, 3, 30, 30))
    (a,) = run_op("PriorBox", dict(min_size=(4.7,), max_size=(9.9,), aspect_ratio=(3.0,)),
                  [feat, img])
    (b,) = run_op("PriorBox", dict(min_size=(4.0,), max_size=(9.0,), aspect_ratio=(3.0,)),
                  [feat, img])
    np.testing.assert_array_equal(a, b)


def test_prior_box_aspect_ratio_dedup_and_order():
    feat, img = np.zeros((1, 1, 1, 1)), np.zeros((1, 3, 100, 100))
    ars = (2.0, 0.5, 1.0, 2.0000001, 3.0)
    (y,) = run_op("PriorBox", dict(min_size=(10.0,), aspect_ratio=ars), [feat, img])
    boxes = y[0, 0].reshape(-1, 4)
    widths = (boxes[:, 2] - boxes[:, 0]) * 100
    heights = (boxes[:, 3] - boxes[:, 1]) * 100
    # ratios [1, 2, 1/2, 3, 1/3]: 0.5 is dropped (1/2 already there), as are 1 and 2.0000001.
    np.testing.assert_allclose(widths / heights, [1, 2, 0.5, 3, 1 / 3], rtol=1e-5)
    (y,) = run_op("PriorBox", dict(min_size=(10.0,), aspect_ratio=ars, flip=False), [feat, img])
    boxes = y[0, 0].reshape(-1, 4)
    np.testing.assert_allclose((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]),
                               [1, 2, 0.5, 3], rtol=1e-5)


def test_prior_box_several_min_sizes_order():
    feat, img = np.zeros((1, 1, 1, 1)), np.zeros((1, 3, 100, 100))
    attrs = dict(min_size=(2.0, 4.0), max_size=(3.0, 8.0), aspect_ratio=(2.0,), flip=False)
    (y,) = run_op("PriorBox", attrs, [feat, img])
    boxes = y[0, 0].reshape(-1, 4)
    widths = (boxes[:, 2] - boxes[:, 0]) * 100
    r2 = math.sqrt(2)
    # min 2, sqrt(2*3), ar 2 of min 2 (from min_size, not sqrt(min*max)), then the same for 4.
    np.testing.assert_allclose(widths, [2, math.sqrt(6), 2 * r2, 4, math.sqrt(32), 4 * r2],
                               rtol=1e-5)


@pytest.mark.parametrize("attrs,shape", [
    (dict(min_size=(30.0,), max_size=(60.0,), aspect_ratio=(2.0, 3.0), clip=True), (5, 6)),
    (dict(min_size=(21.0, 45.0), aspect_ratio=(2.0,), flip=False, step_h=7.0, step_w=9.0,
          offset=0.25, variance=(0.1, 0.1, 0.2, 0.2)), (3, 4)),
    (dict(min_size=(60.0,), max_size=(150.0,), aspect_ratio=(2.0, 0.5, 3.0, 1.0 / 3),
          img_h=300, img_w=200), (2, 2)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_prior_box_direct_loops(attrs, shape, dtype):
    feat, img = np.zeros((2, 4, *shape)), np.zeros((2, 3, 64, 96))
    (y,) = run_op("PriorBox", attrs, [feat, img], dtype=dtype)
    want = direct_prior_box(attrs, *shape, 64, 96)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, atol=1e-6)


@pytest.mark.parametrize("attrs,msg", [
    (dict(min_size=(8.0,), max_size=(8.0,)), "must exceed"),
    (dict(min_size=(8.0,), max_size=(9.0, 10.0)), "max_size"),
    (dict(min_size=()), "min_size"),
    (dict(min_size=(8.0,), variance=(0.1, 0.2)), "variance"),
])
def test_prior_box_errors(attrs, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("PriorBox", attrs, [(1, 1, 2, 2), (1, 3, 8, 8)])


# -- DetectionOutput ---------------------------------------------------------------------------
def prior_blob(boxes, variance=(0.1, 0.1, 0.2, 0.2)):
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.stack([boxes.reshape(-1), np.tile(variance, len(boxes))])[None]


HAND_PRIORS = [[0.0, 0.0, 0.4, 0.4],
               [0.05, 0.05, 0.45, 0.45],    # IoU with prior 0: 0.1225 / 0.1975 = 0.62
               [0.5, 0.5, 0.9, 0.9],
               [0.6, 0.0, 1.0, 0.3]]        # no overlap with prior 2
HAND_CONF = [[0.1, 0.8, 0.1],
             [0.2, 0.7, 0.1],
             [0.3, 0.1, 0.6],
             [0.5, 0.05, 0.45]]             # background scores are never reported
HAND_ATTRS = dict(num_classes=3, nms_threshold=0.45, confidence_threshold=0.3)


def detect(attrs, loc, conf, prior, dtype=np.float64):
    (y,) = run_op("DetectionOutput", attrs, [loc, conf, prior], dtype=dtype)
    assert y.ndim == 4 and y.shape[:2] == (1, 1) and y.shape[3] == 7
    return y[0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_detection_output_nms_drops_overlap_by_hand(dtype):
    loc = np.zeros((1, 16))                           # decoded boxes == priors
    conf = np.array(HAND_CONF).reshape(1, 12)
    rows = detect(HAND_ATTRS, loc, conf, prior_blob(HAND_PRIORS), dtype)
    assert rows.dtype == dtype
    np.testing.assert_allclose(rows, [[0, 1, 0.8, *HAND_PRIORS[0]],
                                      [0, 2, 0.6, *HAND_PRIORS[2]],
                                      [0, 2, 0.45, *HAND_PRIORS[3]]], rtol=1e-6)


def test_detection_output_keep_top_k_cuts_across_classes_rows_grouped_by_label():
    loc = np.zeros((1, 16))
    conf = np.array(HAND_CONF)
    conf[2, 2] = 0.9                                  # class 2's best now beats class 1's
    conf = conf.reshape(1, 12)
    prior = prior_blob(HAND_PRIORS)
    rows = detect(HAND_ATTRS, loc, conf, prior)
    np.testing.assert_allclose(rows[:, 1:3], [[1, 0.8], [2, 0.9], [2, 0.45]])  # not score order
    rows = detect(dict(HAND_ATTRS, keep_top_k=2), loc, conf, prior)
    np.testing.assert_allclose(rows, [[0, 1, 0.8, *HAND_PRIORS[0]],
                                      [0, 2, 0.9, *HAND_PRIORS[2]]])
    rows = detect(dict(HAND_ATTRS, keep_top_k=1), loc, conf, prior)
    np.testing.assert_allclose(rows, [[0, 2, 0.9, *HAND_PRIORS[2]]])


def test_detection_output_nms_top_k_limits_candidates():
    rows = detect(dict(HAND_ATTRS, top_k=1), np.zeros((1, 16)),
                  np.array(HAND_CONF).reshape(1, 12), prior_blob(HAND_PRIORS))
    np.testing.assert_allclose(rows[:, 1:3], [[1, 0.8], [2, 0.6]])


def test_detection_output_threshold_is_strict_and_defaults_to_everything():
    conf = np.array([[0.5, 0.5], [0.75, 0.25]]).reshape(1, 4)   # exactly representable
    priors = [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]]
    loc = np.zeros((1, 8))
    rows = detect(dict(num_classes=2, confidence_threshold=0.25), loc, conf, prior_blob(priors))
    np.testing.assert_allclose(rows[:, 1:3], [[1, 0.5]])        # 0.25 is not > 0.25
    rows = detect(dict(num_classes=2), loc, conf, prior_blob(priors))
    np.testing.assert_allclose(rows[:, 1:3], [[1, 0.5], [1, 0.25]])


def test_detection_output_adaptive_eta():
    priors = [[0.0, 0.0, 0.4, 0.4],      # score 0.9
              [0.2, 0.0, 0.6, 0.4],      # 0.8: IoU with box 0 = 1/3
              [0.1, 0.0, 0.5, 0.4]]      # 0.7: IoU 0.6 with box 0 and with box 1
    conf = np.array([[0.0, 0.9], [0.0, 0.8], [0.0, 0.7]]).reshape(1, 6)
    loc = np.zeros((1, 12))
    attrs = dict(num_classes=2, nms_threshold=0.7)
    assert len(detect(attrs, loc, conf, prior_blob(priors))) == 3
    # eta 0.5: after the first keep the threshold drops to 0.35 (it was > 0.5), then stays.
    rows = detect(dict(attrs, eta=0.5), loc, conf, prior_blob(priors))
    np.testing.assert_allclose(rows[:, 2], [0.9, 0.8])


@pytest.mark.parametrize("dtype", DTYPES)
def test_detection_output_center_size_decoding_with_variances(dtype):
    prior = prior_blob([[0.1, 0.2, 0.5, 0.6]])       # centre (0.3, 0.4), size 0.4 x 0.4
    conf = np.array([[0.0, 1.0]])
    attrs = dict(num_classes=2, code_type="CENTER_SIZE")
    loc = np.array([[1.0, -2.0, math.log(2) / 0.2, 0.0]])
    want = [0, 1, 1.0, -0.06, 0.12, 0.74, 0.52]     # not clipped: xmin stays negative
    np.testing.assert_allclose(detect(attrs, loc, conf, prior, dtype), [want], atol=1e-6)
    loc = np.array([[0.1, -0.2, math.log(2), 0.0]])
    rows = detect(dict(attrs, variance_encoded_in_target=True), loc, conf, prior, dtype)
    np.testing.assert_allclose(rows, [want], atol=1e-6)


def test_detection_output_corner_and_corner_size_decoding():
    prior = prior_blob([[0.1, 0.2, 0.5, 0.6]])
    conf = np.array([[0.0, 1.0]])
    loc = np.array([[1.0, 1.0, 1.0, -1.0]])
    rows = detect(dict(num_classes=2, code_type="CORNER_SIZE"), loc, conf, prior)
    np.testing.assert_allclose(rows[0, 3:], [0.14, 0.24, 0.58, 0.52])
    rows = detect(dict(num_classes=2), loc, conf, prior)                       # CORNER
    np.testing.assert_allclose(rows[0, 3:], [0.2, 0.3, 0.7, 0.4])
    rows = detect(dict(num_classes=2, variance_encoded_in_target=True), loc, conf, prior)
    np.testing.assert_allclose(rows[0, 3:], [1.1, 1.2, 1.5, -0.4])


def test_detection_output_nothing_kept_gives_one_fake_row_per_image():
    conf = np.full((2, 8), 0.25)
    loc = np.zeros((2, 16))
    prior = prior_blob(HAND_PRIORS)
    rows = detect(dict(num_classes=2, confidence_threshold=0.5), loc, conf, prior)
    np.testing.assert_array_equal(rows, [[0, -1, -1, -1, -1, -1, -1],
                                         [1, -1, -1, -1, -1, -1, -1]])
    conf[1, 1] = 0.9                                  # image 1, prior 0, class 1
    rows = detect(dict(num_classes=2, confidence_threshold=0.5), loc, conf, prior)
    np.testing.assert_allclose(rows, [[1, 1, 0.9, *HAND_PRIORS[0]]])


def test_detection_output_per_class_locations_and_no_background():
    priors = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]
    loc = np.zeros((1, 2, 3, 4))                     # (prior, class, coord)
    loc[0, 0, 1] = [0.1, 0.0, 0.0, 0.0]              # class 1 shifts prior 0's xmin
    loc[0, 1, 2] = [0.0, 0.0, 0.0, -0.5]             # class 2 shrinks prior 1's ymax
    conf = np.array([[0.9, 0.8, 0.0], [0.0, 0.0, 0.7]]).reshape(1, 6)
    attrs = dict(num_classes=3, share_location=False, background_label_id=-1,
                 variance_encoded_in_target=True, confidence_threshold=0.5)
    rows = detect(attrs, loc.reshape(1, 24), conf, prior_blob(priors))
    np.testing.assert_allclose(rows, [[0, 0, 0.9, 0.0, 0.0, 0.5, 0.5],
                                      [0, 1, 0.8, 0.1, 0.0, 0.5, 0.5],
                                      [0, 2, 0.7, 0.5, 0.5, 1.0, 0.5]])
    # shared locations with no background class: every class counts (the fork's GPU path)
    rows = detect(dict(num_classes=3, background_label_id=-1, confidence_threshold=0.5),
                  np.zeros((1, 8)), conf, prior_blob(priors))
    np.testing.assert_allclose(rows[:, 1:3], [[0, 0.9], [1, 0.8], [2, 0.7]])


@pytest.mark.parametrize("attrs,bound", [
    (dict(num_classes=3), 8),                         # 2 classes x 4 priors
    (dict(num_classes=3, top_k=1), 2),
    (dict(num_classes=3, keep_top_k=5), 5),
    (dict(num_classes=3, keep_top_k=0), 1),           # the fake row
    (dict(num_classes=3, background_label_id=-1), 12),
])
def test_detection_output_static_shape_is_an_upper_bound(attrs, bound):
    g = one_op_graph("DetectionOutput", attrs, [(1, 16), (1, 12), (1, 2, 16)])
    assert g.shapes["out0"] == (1, 1, bound, 7)
    g = one_op_graph("DetectionOutput", attrs, [(3, 16), (3, 12), (1, 2, 16)])
    assert g.shapes["out0"] == (1, 1, 3 * bound, 7)


@pytest.mark.parametrize("shapes,msg", [
    ([(1, 12), (1, 12), (1, 2, 16)], "loc input"),
    ([(1, 16), (1, 8), (1, 2, 16)], "conf input"),
    ([(1, 16), (1, 12), (1, 16)], "prior input"),
    ([(1, 16), (2, 12), (1, 2, 16)], "images"),
])
def test_detection_output_shape_errors(shapes, msg):
    with pytest.raises(ShapeError, match=msg):
        one_op_graph("DetectionOutput", dict(num_classes=3), shapes)


def direct_detection_output(loc, conf, prior, a):
    """Straight from detection_output_layer.cpp / bbox_util.cpp, in Python floats."""
    n, nc, bg = loc.shape[0], a["num_classes"], a.get("background_label_id", 0)
    share = a.get("share_location", True)
    p = prior.shape[2] // 4
    nl = 1 if share else nc
    code, enc = a.get("code_type", "CORNER"), a.get("variance_encoded_in_target", False)
    top_k, keep_top_k, eta = a.get("top_k", -1), a.get("keep_top_k", -1), a.get("eta", 1.0)
    thr = a.get("confidence_threshold")
    thr = -3.4e38 if thr is None else thr
    pb, pv = prior[0, 0].reshape(p, 4), prior[0, 1].reshape(p, 4)
    loc = loc.reshape(n, p, nl, 4)
    conf = conf.reshape(n, p, nc)

    def decode(pr, v, lc):
        if enc:
            v = [1.0] * 4
        if code == "CORNER":
            return [pr[k] + v[k] * lc[k] for k in range(4)]
        pw, ph = pr[2] - pr[0], pr[3] - pr[1]
        if code == "CORNER_SIZE":
            return [pr[0] + v[0] * lc[0] * pw, pr[1] + v[1] * lc[1] * ph,
                    pr[2] + v[2] * lc[2] * pw, pr[3] + v[3] * lc[3] * ph]
        cx = v[0] * lc[0] * pw + (pr[0] + pr[2]) / 2
        cy = v[1] * lc[1] * ph + (pr[1] + pr[3]) / 2
        w, h = math.exp(v[2] * lc[2]) * pw, math.exp(v[3] * lc[3]) * ph
        return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]

    def size(b):
        return 0.0 if b[2] < b[0] or b[3] < b[1] else (b[2] - b[0]) * (b[3] - b[1])

    def iou(b1, b2):
        if b2[0] > b1[2] or b2[2] < b1[0] or b2[1] > b1[3] or b2[3] < b1[1]:
            return 0.0
        iw = min(b1[2], b2[2]) - max(b1[0], b2[0])
        ih = min(b1[3], b2[3]) - max(b1[1], b2[1])
        if iw > 0 and ih > 0:
            return iw * ih / (size(b1) + size(b2) - iw * ih)
        return 0.0

    rows = []
    for i in range(n):
        boxes = {c: [decode(pb[j], pv[j], loc[i, j, c]) for j in range(p)] for c in range(nl)}
        indices = {}
        for c in range(nc):
            if c == bg:
                continue
            bx = boxes[0 if share else c]
            cand = sorted(((conf[i, j, c], j) for j in range(p) if conf[i, j, c] > thr),
                          key=lambda t: -t[0])
            if top_k > -1:
                cand = cand[:top_k]
            kept, t = [], a.get("nms_threshold", 0.3)
            for _, j in cand:
                if all(iou(bx[j], bx[k]) <= t for k in kept):
                    kept.append(j)
                    if eta < 1 and t > 0.5:
                        t *= eta
            indices[c] = kept
        if keep_top_k > -1 and sum(map(len, indices.values())) > keep_top_k:
            pairs = sorted(((conf[i, j, c], c, j) for c in sorted(indices) for j in indices[c]),
                           key=lambda t: -t[0])[:keep_top_k]
            indices = {}
            for _, c, j in pairs:
                indices.setdefault(c, []).append(j)
        for c in sorted(indices):
            for j in indices[c]:
                rows.append([i, c, conf[i, j, c], *boxes[0 if share else c][j]])
    return np.array(rows or [[i] + [-1] * 6 for i in range(n)], dtype=np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_detection_output_direct_loops(seed):
    rng = np.random.default_rng(seed)
    n, p, nc = 2, 25, 4
    share = seed % 3 != 0
    code = ("CORNER", "CENTER_SIZE", "CORNER_SIZE")[seed % 3]
    xy = rng.uniform(0, 0.8, size=(p, 2))
    wh = rng.uniform(0.05, 0.4, size=(p, 2))
    prior = prior_blob(np.concatenate([xy, xy + wh], axis=1), (0.1, 0.1, 0.2, 0.2))
    nl = 1 if share else nc
    loc = rng.normal(0, 1, size=(n, p * nl * 4))
    logits = rng.normal(0, 2, size=(n, p, nc))
    conf = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).reshape(n, -1)
    attrs = dict(num_classes=nc, share_location=share, code_type=code,
                 background_label_id=(0, -1, 2)[seed % 3], nms_threshold=0.45,
                 confidence_threshold=0.05, keep_top_k=(-1, 7, 20)[seed % 3],
                 top_k=(-1, 10)[seed % 2], eta=(1.0, 0.9)[seed % 2],
                 variance_encoded_in_target=seed % 4 == 1)
    rows = detect(attrs, loc, conf, prior)
    np.testing.assert_allclose(rows, direct_detection_output(loc, conf, prior, attrs),
                               rtol=1e-12, atol=1e-12)
    rows32 = detect(attrs, loc, conf, prior, np.float32)
    assert rows32.shape == rows.shape
    np.testing.assert_allclose(rows32, rows, rtol=1e-5, atol=1e-5)


# -- importer mappers --------------------------------------------------------------------------
def mapped(text):
    caffe_pb2 = pytest.importorskip("edgebrew.importer.proto.caffe_pb2")
    from google.protobuf import text_format
    from edgebrew.importer.layers import MAPPERS
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    return MAPPERS[lp.type](lp)


def test_normalize_mapper():
    assert mapped('name: "n" type: "Normalize"') == dict(across_spatial=True,
                                                         channel_shared=True,
                                                         eps=pytest.approx(1e-10))
    assert mapped('name: "n" type: "Normalize" norm_param { across_spatial: false '
                  'channel_shared: false scale_filler { type: "constant" value: 20 } }'
                  ) == dict(across_spatial=False, channel_shared=False, eps=pytest.approx(1e-10))


def test_prior_box_mapper():
    a = mapped('name: "pb" type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 '
               'aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 '
               'variance: 0.2 variance: 0.2 step: 8 offset: 0.5 }')
    assert a == dict(min_size=(30.0,), max_size=(60.0,), aspect_ratio=(2.0,), flip=True,
                     clip=False, variance=pytest.approx((0.1, 0.1, 0.2, 0.2)), img_h=0,
                     img_w=0, step_h=8.0, step_w=8.0, offset=0.5)
    a = mapped('name: "pb" type: "PriorBox" prior_box_param { min_size: 30 img_size: 300 }')
    assert (a["img_h"], a["img_w"], a["step_h"], a["step_w"]) == (300, 300, 0.0, 0.0)
    assert a["variance"] == pytest.approx((0.1,)) and a["flip"] is True
    a = mapped('name: "pb" type: "PriorBox" prior_box_param { min_size: 30 img_h: 300 '
               'img_w: 500 step_h: 16 step_w: 32 }')
    assert (a["img_h"], a["img_w"], a["step_h"], a["step_w"]) == (300, 500, 16.0, 32.0)


@pytest.mark.parametrize("param,msg", [
    ("", "min_size is required"),
    ("min_size: 30 img_size: 300 img_h: 300 img_w: 300", "either img_size"),
    ("min_size: 30 step: 8 step_h: 8 step_w: 8", "either step"),
    ("min_size: 30 img_h: 300", "must both be positive"),
    ("min_size: 30 max_size: 20", "greater than"),
    ("min_size: 30 variance: 0.1 variance: 0.2", "variance"),
])
def test_prior_box_mapper_errors(param, msg):
    with pytest.raises(UnsupportedLayerError, match=msg) as e:
        mapped(f'name: "pb1" type: "PriorBox" prior_box_param {{ {param} }}')
    assert "layer 'pb1'" in str(e.value)


def test_detection_output_mapper():
    a = mapped('name: "d" type: "DetectionOutput" detection_output_param { num_classes: 21 }')
    assert a == dict(num_classes=21, share_location=True, background_label_id=0,
                     nms_threshold=pytest.approx(0.3), top_k=-1, eta=1.0, code_type="CORNER",
                     variance_encoded_in_target=False, keep_top_k=-1,
                     confidence_threshold=None)
    a = mapped('name: "d" type: "DetectionOutput" detection_output_param { num_classes: 21 '
               'share_location: false background_label_id: -1 nms_param { nms_threshold: 0.45 '
               'top_k: 400 eta: 0.9 } save_output_param { output_directory: "/tmp/x" } '
               'code_type: CENTER_SIZE variance_encoded_in_target: true keep_top_k: 200 '
               'confidence_threshold: 0.01 }')
    assert a == dict(num_classes=21, share_location=False, background_label_id=-1,
                     nms_threshold=pytest.approx(0.45), top_k=400, eta=pytest.approx(0.9),
                     code_type="CENTER_SIZE", variance_encoded_in_target=True, keep_top_k=200,
                     confidence_threshold=pytest.approx(0.01))
    assert mapped('name: "d" type: "DetectionOutput" detection_output_param { num_classes: 2 '
                  'code_type: CORNER_SIZE }')["code_type"] == "CORNER_SIZE"


@pytest.mark.parametrize("param,msg", [
    ("", "num_classes is required"),
    ("num_classes: 2 nms_param { eta: 0 }", "eta"),
    ("num_classes: 2 nms_param { nms_threshold: -1 }", "nms_threshold"),
])
def test_detection_output_mapper_errors(param, msg):
    with pytest.raises(UnsupportedLayerError, match=msg):
        mapped(f'name: "d1" type: "DetectionOutput" detection_output_param {{ {param} }}')
