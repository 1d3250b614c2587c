"""The C kernels of the SSD layers (Normalize, PriorBox, DetectionOutput) against the NumPy
reference executor (float32), through a bundle and libedgebrew.

DetectionOutput must agree exactly in the number and order of detections (image, label and
score columns are compared bit for bit: they are copied, never computed) and to 1e-5 in the box
coordinates. Bundles whose attributes or shapes do not fit must fail to load (prepare) with
EB_ERR_INVALID_BUNDLE and a message naming the problem.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgebrew.errors import EdgebrewError  # noqa: E402
from helpers import c_runtime_available, one_op_graph, rel_error, run_op, run_op_c  # noqa: E402

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")

F32 = np.float32
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reference(op_type, attrs, inputs, weights=()):
    return run_op(op_type, attrs, [np.asarray(x, F32) for x in inputs],
                  [np.asarray(w, F32) for w in weights], dtype=F32)[0]


def c_op(op_type, attrs, inputs, weights=(), threads=1):
    return run_op_c(op_type, attrs, [np.asarray(x, F32) for x in inputs],
                    [np.asarray(w, F32) for w in weights], threads=threads)[0]


def assert_same_detections(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    # image id, label and score: the count and the order of the detections, exactly
    np.testing.assert_array_equal(got[..., :3], want[..., :3])
    np.testing.assert_allclose(got[..., 3:], want[..., 3:], rtol=1e-5, atol=1e-5)


# -- Normalize ---------------------------------------------------------------------------------
@st.composite
def normalize_cases(draw):
    ndim = draw(st.integers(2, 4))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    if draw(st.booleans()) and ndim == 4:
        shape = (draw(st.integers(1, 2)), 32, 9, 11)        # more than one tile of positions
    across, shared = draw(st.booleans()), draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    magnitude = draw(st.sampled_from([0.0, 1e-3, 1.0, 300.0]))
    x = (rng.standard_normal(shape) * magnitude).astype(F32)
    scale = rng.standard_normal(() if shared else (shape[1],)).astype(F32)
    attrs = dict(across_spatial=across, channel_shared=shared,
                 eps=draw(st.sampled_from([1e-10, 1e-3, 0.5])))
    return attrs, x, scale, draw(st.sampled_from([1, 3]))


@SETTINGS
@given(normalize_cases())
def test_normalize_matches_reference(case):
    attrs, x, scale, threads = case
    want = reference("Normalize", attrs, [x], [scale])
    got = c_op("Normalize", attrs, [x], [scale], threads=threads)
    assert got.shape == want.shape
    assert rel_error(got, want) <= 1e-5


def test_normalize_threads_agree_bit_for_bit():
    x = np.random.default_rng(3).standard_normal((2, 24, 13, 17)).astype(F32)
    for attrs in (dict(), dict(across_spatial=False, channel_shared=False)):
        w = np.array(2.5, F32) if attrs.get("channel_shared", True) else np.arange(24, dtype=F32)
        outs = [c_op("Normalize", attrs, [x], [w], threads=t) for t in (1, 2, 4)]
        assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


# -- PriorBox ----------------------------------------------------------------------------------
RATIOS = [1.0, 2.0, 0.5, 3.0, 1.0 / 3, 1.5, 2.0000001, 2.000002, 4.0]


@st.composite
def prior_box_cases(draw):
    n_min = draw(st.integers(1, 3))
    mins = draw(st.lists(st.floats(1.0, 120.0, allow_nan=False, allow_infinity=False),
                         min_size=n_min, max_size=n_min))
    if draw(st.booleans()):
        mins = [float(round(m)) or 1.0 for m in mins]
    attrs = dict(min_size=tuple(mins))
    if draw(st.booleans()):
        attrs["max_size"] = tuple(m + draw(st.floats(0.5, 80.0)) for m in mins)
    attrs["aspect_ratio"] = tuple(draw(st.lists(
        st.one_of(st.sampled_from(RATIOS), st.floats(0.2, 5.0)), max_size=4)))
    attrs["flip"] = draw(st.booleans())
    attrs["clip"] = draw(st.booleans())
    attrs["variance"] = draw(st.sampled_from([(0.1,), (0.1, 0.1, 0.2, 0.2), (0.5, 1.0, 2.0, 0.3)]))
    if draw(st.booleans()):            # img_h/img_w win only when both are nonzero
        attrs["img_h"] = draw(st.integers(0, 600))
        attrs["img_w"] = draw(st.integers(0, 600))
    if draw(st.booleans()):            # step_h/step_w win only when both are nonzero
        attrs["step_h"] = draw(st.sampled_from([0.0, 8.0, 7.5, 16.0, 33.3]))
        attrs["step_w"] = draw(st.sampled_from([0.0, 8.0, 9.25, 32.0]))
    if draw(st.booleans()):
        attrs["offset"] = draw(st.sampled_from([0.0, 0.25, 0.5, 0.9]))
    feat = np.zeros((1, 2, draw(st.integers(1, 12)), draw(st.integers(1, 12))), F32)
    img = np.zeros((1, 3, draw(st.integers(1, 400)), draw(st.integers(1, 400))), F32)
    return attrs, feat, img, draw(st.sampled_from([1, 3]))


@SETTINGS
@given(prior_box_cases())
def test_prior_box_matches_reference(case):
    attrs, feat, img, threads = case
    want = reference("PriorBox", attrs, [feat, img])
    got = c_op("PriorBox", attrs, [feat, img], threads=threads)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_prior_box_ssd300_layers():
    """The six PriorBox layers of SSD300 (VOC), at their real sizes."""
    layers = [(38, 30, 60, (2,)), (19, 60, 111, (2, 3)), (10, 111, 162, (2, 3)),
              (5, 162, 213, (2, 3)), (3, 213, 264, (2,)), (1, 264, 315, (2,))]
    img = np.zeros((1, 3, 300, 300), F32)
    steps = [8, 16, 32, 64, 100, 300]
    for (size, lo, hi, ars), step in zip(layers, steps):
        attrs = dict(min_size=(float(lo),), max_size=(float(hi),), aspect_ratio=ars, flip=True,
                     clip=False, variance=(0.1, 0.1, 0.2, 0.2), step_h=float(step),
                     step_w=float(step), offset=0.5)
        feat = np.zeros((1, 4, size, size), F32)
        np.testing.assert_allclose(c_op("PriorBox", attrs, [feat, img], threads=2),
                                   reference("PriorBox", attrs, [feat, img]), atol=1e-6)


# -- DetectionOutput ---------------------------------------------------------------------------
def make_priors(rng, p, clustered):
    """Prior boxes that overlap a lot (clustered centres) so NMS has work to do."""
    centres = rng.uniform(0.3, 0.7, size=(p, 2))
    sizes = rng.uniform(0.05, 0.4, size=(p, 2))
    if clustered:                              # many identical boxes: IoU exactly 1 or 0
        centres = np.round(centres * 4) / 4
        sizes = np.round(sizes * 8 + 1) / 8
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


@st.composite
def detection_cases(draw):
    n = draw(st.integers(1, 3))
    p = draw(st.integers(1, 50))
    nc = draw(st.integers(1, 5))
    share = draw(st.booleans())
    nl = 1 if share else nc
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    boxes = make_priors(rng, p, draw(st.booleans()))
    variance = draw(st.sampled_from([(0.1, 0.1, 0.2, 0.2), (1.0, 1.0, 1.0, 1.0)]))
    prior = np.stack([boxes.reshape(-1), np.tile(variance, p)])[None].astype(F32)
    loc_scale = draw(st.sampled_from([0.0, 0.01, 0.5, 2.0]))
    loc = (rng.standard_normal((n, p * nl * 4)) * loc_scale).astype(F32)
    if draw(st.booleans()):                    # few distinct scores: ties everywhere
        conf = rng.choice(np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9], F32), size=(n, p * nc))
    else:
        conf = rng.uniform(0, 1, size=(n, p * nc)).astype(F32)
    attrs = dict(
        num_classes=nc, share_location=share,
        code_type=draw(st.sampled_from(["CORNER", "CENTER_SIZE", "CORNER_SIZE"])),
        background_label_id=draw(st.sampled_from([0, -1, nc - 1])),
        nms_threshold=draw(st.sampled_from([0.0, 0.3, 0.45, 0.7, 1.0])),
        top_k=draw(st.sampled_from([-1, 0, 1, 5, 400])),
        eta=draw(st.sampled_from([1.0, 0.9, 0.5])),
        variance_encoded_in_target=draw(st.booleans()),
        keep_top_k=draw(st.sampled_from([-1, 0, 1, 3, 10, 200])),
        confidence_threshold=draw(st.sampled_from([None, 0.0, 0.01, 0.3, 0.5, 0.95, 2.0])))
    return attrs, [loc, conf, prior], draw(st.sampled_from([1, 3]))


@settings(SETTINGS, max_examples=150)
@given(detection_cases())
def test_detection_output_matches_reference(case):
    attrs, inputs, threads = case
    want = reference("DetectionOutput", attrs, inputs)
    got = c_op("DetectionOutput", attrs, inputs, threads=threads)
    assert_same_detections(got, want)


@pytest.mark.parametrize("code_type", ["CORNER", "CENTER_SIZE", "CORNER_SIZE"])
@pytest.mark.parametrize("share", [True, False])
def test_detection_output_every_code_type_and_sharing(code_type, share):
    rng = np.random.default_rng(11)
    n, p, nc = 2, 40, 4
    nl = 1 if share else nc
    prior = np.stack([make_priors(rng, p, False).reshape(-1),
                      np.tile([0.1, 0.1, 0.2, 0.2], p)])[None]
    loc = rng.standard_normal((n, p * nl * 4))
    logits = rng.normal(0, 2, size=(n, p, nc))
    conf = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).reshape(n, -1)
    for extra in (dict(), dict(keep_top_k=7), dict(top_k=5, eta=0.8, nms_threshold=0.6),
                  dict(background_label_id=-1, confidence_threshold=0.2)):
        attrs = dict(dict(num_classes=nc, share_location=share, code_type=code_type,
                          nms_threshold=0.45), **extra)
        want = reference("DetectionOutput", attrs, [loc, conf, prior])
        assert_same_detections(c_op("DetectionOutput", attrs, [loc, conf, prior]), want)


def test_detection_output_ties_keep_the_reference_order():
    """Equal scores: NMS candidates in prior order, keep_top_k in (label, NMS) order."""
    p, nc = 12, 3
    boxes = np.array([[0.1 * (j % 6), 0.3 * (j // 6), 0.1 * (j % 6) + 0.08,
                       0.3 * (j // 6) + 0.2] for j in range(p)])   # disjoint boxes
    prior = np.stack([boxes.reshape(-1), np.full(p * 4, 0.1)])[None]
    conf = np.full((1, p * nc), 0.5)
    loc = np.zeros((1, p * 4))
    for keep in (-1, 0, 1, 5, 11, 12, 30):
        attrs = dict(num_classes=nc, keep_top_k=keep, top_k=7)
        want = reference("DetectionOutput", attrs, [loc, conf, prior])
        assert_same_detections(c_op("DetectionOutput", attrs, [loc, conf, prior]), want)


def test_detection_output_nothing_kept():
    rng = np.random.default_rng(5)
    p = 10
    prior = np.stack([make_priors(rng, p, False).reshape(-1), np.full(p * 4, 0.1)])[None]
    loc, conf = np.zeros((3, p * 4)), rng.uniform(0, 0.5, size=(3, p * 3))
    for attrs in (dict(num_classes=3, confidence_threshold=0.6),        # threshold over all
                  dict(num_classes=3, keep_top_k=0),                    # keep none
                  dict(num_classes=3, top_k=0),                         # no candidates
                  dict(num_classes=1)):                                 # background only
        scores = conf[:, :p * attrs["num_classes"]]
        want = reference("DetectionOutput", attrs, [loc, scores, prior])
        got = c_op("DetectionOutput", attrs, [loc, scores, prior], threads=2)
        assert got.shape == (1, 1, 3, 7)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got[0, 0, :, 0], [0, 1, 2])
        assert np.all(got[0, 0, :, 1:] == -1)


def test_detection_output_non_finite_inputs():
    rng = np.random.default_rng(9)
    n, p, nc = 2, 30, 3
    prior = np.stack([make_priors(rng, p, False).reshape(-1),
                      np.tile([0.1, 0.1, 0.2, 0.2], p)])[None].astype(F32)
    for code_type in ("CORNER", "CENTER_SIZE", "CORNER_SIZE"):
        loc = rng.standard_normal((n, p * 4)).astype(F32)
        conf = rng.uniform(0, 1, size=(n, p * nc)).astype(F32)
        mask = rng.random(loc.shape) < 0.1
        loc[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf, 500.0], F32), mask.sum())
        mask = rng.random(conf.shape) < 0.1
        conf[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], F32), mask.sum())
        attrs = dict(num_classes=nc, code_type=code_type, keep_top_k=10)
        with np.errstate(all="ignore"):
            want = reference("DetectionOutput", attrs, [loc, conf, prior])
        assert_same_detections(c_op("DetectionOutput", attrs, [loc, conf, prior]), want)


def test_detection_output_threads_agree_bit_for_bit():
    rng = np.random.default_rng(2)
    n, p, nc = 2, 300, 6
    prior = np.stack([make_priors(rng, p, False).reshape(-1),
                      np.tile([0.1, 0.1, 0.2, 0.2], p)])[None]
    loc = rng.standard_normal((n, p * nc * 4))
    conf = rng.uniform(0, 1, size=(n, p * nc))
    attrs = dict(num_classes=nc, share_location=False, code_type="CENTER_SIZE", top_k=100,
                 keep_top_k=50, nms_threshold=0.5, eta=0.9)
    outs = [c_op("DetectionOutput", attrs, [loc, conf, prior], threads=t) for t in (1, 2, 4)]
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()
    assert_same_detections(outs[0], reference("DetectionOutput", attrs, [loc, conf, prior]))


def test_detection_output_degenerate_prior_is_a_runtime_error():
    """A prior without width makes CENTER_SIZE / CORNER_SIZE decoding fail in the reference;
    the C kernel refuses to run it too (CORNER does not need the width)."""
    prior = np.array([[[0.0, 0.0, 0.5, 0.5, 0.2, 0.2, 0.2, 0.6], [0.1] * 8]], F32)
    loc, conf = np.zeros((1, 8), F32), np.full((1, 4), 0.5, F32)
    for code_type in ("CENTER_SIZE", "CORNER_SIZE"):
        attrs = dict(num_classes=2, code_type=code_type)
        with pytest.raises(EdgebrewError):
            reference("DetectionOutput", attrs, [loc, conf, prior])
        with pytest.raises(EdgebrewError, match="RUNTIME"):
            c_op("DetectionOutput", attrs, [loc, conf, prior])
    attrs = dict(num_classes=2)
    assert_same_detections(c_op("DetectionOutput", attrs, [loc, conf, prior]),
                           reference("DetectionOutput", attrs, [loc, conf, prior]))


def test_ssd_head_prior_box_into_detection_output():
    """PriorBox feeding DetectionOutput in one bundle (an SSD300-sized 19x19 head)."""
    from edgebrew import reference as ref_exec
    from edgebrew.bundle import Bundle
    from edgebrew.ir import Graph, Node, TensorInfo
    from edgebrew.runtime import Session
    nc, per_loc, hw = 21, 6, 19
    p = hw * hw * per_loc
    inputs = [TensorInfo("feat", (1, 8, hw, hw)), TensorInfo("data", (1, 3, 300, 300)),
              TensorInfo("loc", (1, p * 4)), TensorInfo("conf", (1, p * nc))]
    nodes = [Node("pb", "PriorBox", ["feat", "data"], ["prior"],
                  dict(min_size=(60.0,), max_size=(111.0,), aspect_ratio=(2.0, 3.0), flip=True,
                       clip=False, variance=(0.1, 0.1, 0.2, 0.2), step_h=16.0, step_w=16.0)),
             Node("det", "DetectionOutput", ["loc", "conf", "prior"], ["detection_out"],
                  dict(num_classes=nc, code_type="CENTER_SIZE", nms_threshold=0.45, top_k=400,
                       keep_top_k=200, confidence_threshold=0.01))]
    g = Graph("ssd_head", inputs, nodes, ["detection_out"], {})
    g.infer_shapes()
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, size=(1, p, nc))
    feeds = {"feat": np.zeros((1, 8, hw, hw), F32), "data": np.zeros((1, 3, 300, 300), F32),
             "loc": rng.standard_normal((1, p * 4)).astype(F32),
             "conf": (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True))
             .reshape(1, -1).astype(F32)}
    want = ref_exec.run(g, feeds, dtype=F32)["detection_out"]
    for threads in (1, 3):
        with Session(Bundle(g), threads=threads) as s:
            got = s.run(feeds)["detection_out"]
        assert_same_detections(got, want)


# -- bundles that do not fit: prepare refuses them -----------------------------------------------
def load_bad(op_type, attrs, input_shapes, weights=(), edit_attrs=None, edit_shapes=None):
    """A one-op bundle whose attributes (or recorded shapes) are changed after shape inference,
    bypassing the IR's checks, as a corrupted or hand-made bundle would."""
    from edgebrew.bundle import Bundle
    from edgebrew.runtime import Session
    g = one_op_graph(op_type, attrs, input_shapes, [np.asarray(w, F32) for w in weights])
    g.nodes[0].attrs.update(edit_attrs or {})
    g.shapes.update(edit_shapes or {})
    Session(Bundle(g))


PB_SHAPES = [(1, 2, 3, 3), (1, 3, 30, 30)]
DO_SHAPES = [(1, 16), (1, 12), (1, 2, 16)]


@pytest.mark.parametrize("op_type,attrs,shapes,weights,edit,edit_shapes,msg", [
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(variance=(0.1, 0.2)), None,
     "variance"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(variance=(-0.1,)), None, "variance"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(min_size=(-8.0,)), None, "min_size"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(max_size=(4.0,)), None, "max_size"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(aspect_ratio=(0.0,)), None,
     "aspect_ratio"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(step_h=-4.0, step_w=4.0), None,
     "step"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(img_h=-3), None, "img_h"),
    ("PriorBox", dict(min_size=(8.0,)), PB_SHAPES, (), dict(aspect_ratio=(2.0,)), None,
     "output"),                                        # 3 priors per location, not 1
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(num_classes=4), None, "conf"),
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(share_location=False), None,
     "loc"),
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(code_type="CENTRE"), None,
     "code_type"),
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(eta=0.0), None, "eta"),
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(nms_threshold=-0.5), None,
     "nms_threshold"),
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), dict(num_classes=0), None,
     "num_classes"),
    ("DetectionOutput", dict(num_classes=3, keep_top_k=2), DO_SHAPES, (), dict(keep_top_k=3),
     None, "output"),                                  # the output no longer holds the bound
    ("DetectionOutput", dict(num_classes=3), DO_SHAPES, (), None, {"out0": (1, 1, 7, 7)},
     "output"),
    ("Normalize", dict(channel_shared=True), [(1, 4, 2, 2)], [np.array(1.0)],
     dict(channel_shared=False), None, "scale"),
    ("Normalize", dict(channel_shared=False), [(1, 4, 2, 2)], [np.ones(4)],
     dict(channel_shared=True), None, "scale"),
])
def test_bad_bundles_fail_in_prepare(op_type, attrs, shapes, weights, edit, edit_shapes, msg):
    with pytest.raises(EdgebrewError, match="INVALID_BUNDLE") as e:
        load_bad(op_type, attrs, shapes, weights, edit, edit_shapes)
    assert msg in str(e.value) and "'op'" in str(e.value)
