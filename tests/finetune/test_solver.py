"""The C solver against an independent NumPy implementation of Caffe's SGDSolver equations:
every lr policy, lr_mult/decay_mult combinations, momentum 0 and 0.9, iter_size > 1, L1,
clipping, Nesterov, Adam, the loss normalizations and EuclideanLoss, over many iterations."""
import numpy as np
import pytest

import edgebrew
from edgebrew.finetune import FinetuneJob
from ft_common import CaffeSGD, caffe_lr, ip_bundle
from helpers import c_runtime_available, rel_error

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")

TOL = 1e-5
K, N, ITERS, BATCH = 12, 5, 60, 8


def data(n=64, seed=1, k=K, classes=N):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, k)).astype(np.float32), rng.integers(0, classes, n)


def run_both(job_kw, ref_kw, iters=ITERS, batch=BATCH, iter_size=1, labels=None, x=None):
    bundle = ip_bundle(K, N)
    xs, ys = data() if x is None else (x, labels)
    job = FinetuneJob(bundle, iter_size=iter_size, **job_kw)
    w0, b0 = job.weights
    ref = CaffeSGD(w0, b0, iter_size=iter_size, **ref_kw)
    per = batch * iter_size
    for it in range(iters):
        idx = np.arange(it * per, (it + 1) * per) % len(xs)
        lc = job.step(xs[idx], ys[idx])
        lr_ = ref.step(xs[idx], ys[idx])
        assert abs(lc - lr_) <= 1e-5 * max(1.0, abs(lr_)), (it, lc, lr_)
    w, b = job.weights
    return job, ref, w, b


POLICIES = [
    ("fixed", {}),
    ("step", {"gamma": 0.5, "stepsize": 7}),
    ("exp", {"gamma": 0.97}),
    ("inv", {"gamma": 0.05, "power": 0.75}),
    ("multistep", {"gamma": 0.3, "stepvalue": (5, 20, 41)}),
    ("poly", {"power": 2.0, "max_iter": 80}),
    ("sigmoid", {"gamma": -0.2, "stepsize": 30}),
]


@pytest.mark.parametrize("policy,kw", POLICIES, ids=[p for p, _ in POLICIES])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_lr_policies(policy, kw, momentum):
    common = dict(base_lr=0.05, momentum=momentum, weight_decay=5e-3)
    job, ref, w, b = run_both(dict(common, lr_policy=policy, **kw),
                              dict(common, policy=policy, lr_mult=(1, 2), decay_mult=(1, 0), **kw))
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL
    assert job.iter == ITERS


def test_learning_rate_formulas():
    """eb_finetune_learning_rate against Caffe's formulas at many iterations."""
    for policy, kw in POLICIES:
        job = FinetuneJob(ip_bundle(K, N), base_lr=0.1, lr_policy=policy, **kw)
        xs, ys = data()
        state = {"step": 0}
        for it in range(50):
            want = caffe_lr(policy, it, 0.1, state=state,
                            **{k: v for k, v in kw.items()})
            assert job.learning_rate == pytest.approx(want, rel=1e-12), (policy, it)
            job.step(xs[:4], ys[:4])


@pytest.mark.parametrize("lr_mult,decay_mult", [((1, 2), (1, 0)), ((0, 1), (1, 1)),
                                                ((2, 0), (0.5, 3)), ((1, 1), (0, 0))])
@pytest.mark.parametrize("iter_size", [1, 3])
def test_mults_and_iter_size(lr_mult, decay_mult, iter_size):
    common = dict(base_lr=0.03, momentum=0.9, weight_decay=1e-2)
    job, ref, w, b = run_both(dict(common, lr_mult=lr_mult, decay_mult=decay_mult),
                              dict(common, lr_mult=lr_mult, decay_mult=decay_mult),
                              iter_size=iter_size)
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL
    if lr_mult[0] == 0:
        assert np.array_equal(w, job.weights[0])


def test_mults_from_the_bundle():
    """Without lr_mult/decay_mult the prototxt's (kept in the bundle: here 1/1 and 2/0) apply;
    one of the two given keeps the other from the bundle."""
    common = dict(base_lr=0.03, momentum=0.9, weight_decay=1e-2)
    _, ref, w, b = run_both(dict(common), dict(common, lr_mult=(1, 2), decay_mult=(1, 0)))
    assert rel_error(w, ref.p[0]) <= TOL and rel_error(b, ref.p[1]) <= TOL
    _, ref, w, b = run_both(dict(common, lr_mult=(3, 1)),
                            dict(common, lr_mult=(3, 1), decay_mult=(1, 0)))
    assert rel_error(w, ref.p[0]) <= TOL and rel_error(b, ref.p[1]) <= TOL


@pytest.mark.parametrize("extra", [
    {"regularization": "L1"},
    {"clip_gradients": 0.05},
    {"solver": "Nesterov"},
    {"solver": "Adam", "base_lr": 0.002, "momentum": 0.9, "momentum2": 0.999},
], ids=["L1", "clip", "nesterov", "adam"])
def test_regularization_clip_and_solvers(extra):
    job_kw = dict(base_lr=0.05, momentum=0.9, weight_decay=1e-2)
    job_kw.update(extra)
    ref_kw = {k: v for k, v in job_kw.items() if k not in ("regularization", "clip_gradients")}
    ref_kw.update(lr_mult=(1, 2), decay_mult=(1, 0))
    if "regularization" in extra:
        ref_kw["reg"] = extra["regularization"]
    if "clip_gradients" in extra:
        ref_kw["clip"] = extra["clip_gradients"]
    _, ref, w, b = run_both(job_kw, ref_kw, iter_size=2)
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL


@pytest.mark.parametrize("normalization", ["VALID", "BATCH_SIZE", "FULL", "NONE"])
def test_normalization_and_ignore_label(normalization):
    xs, ys = data()
    ys = ys.copy()
    ys[::5] = 255
    common = dict(base_lr=0.02, momentum=0.9, weight_decay=5e-4, normalization=normalization,
                  ignore_label=255)
    _, ref, w, b = run_both(common, dict(common, lr_mult=(1, 2), decay_mult=(1, 0)),
                            x=xs, labels=ys, iters=30)
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL


def test_euclidean_loss():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((64, K)).astype(np.float32)
    ys = rng.standard_normal((64, N)).astype(np.float32)
    common = dict(base_lr=0.01, momentum=0.9, weight_decay=5e-4, loss="euclidean")
    _, ref, w, b = run_both(common, dict(common, lr_mult=(1, 2), decay_mult=(1, 0)),
                            x=xs, labels=ys)
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL


def test_reviewer_recipe_through_finetune():
    """Caffe's run the reviewer holds: batch 32, 100 iterations, step policy (gamma 0.1,
    stepsize 50), base_lr 0.01, momentum 0.9, weight decay 5e-4, lr_mult 1/2, decay_mult 1/0,
    given start weights, samples in a fixed order (wrapping around the end, as Caffe's data
    layer). The features here are the inputs (the layer is the first op)."""
    rng = np.random.default_rng(7)
    n = 1000                                      # not a multiple of 32: batches wrap around
    x = rng.standard_normal((n, K)).astype(np.float32)
    y = rng.integers(0, N, n)
    w0 = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    b0 = (rng.standard_normal(N) * 0.1).astype(np.float32)
    kw = dict(base_lr=0.01, momentum=0.9, weight_decay=5e-4, gamma=0.1, stepsize=50)
    res = edgebrew.finetune(ip_bundle(K, N), x, y, lr_policy="step", batch_size=32,
                            max_iter=100, shuffle=False, lr_mult=(1, 2), decay_mult=(1, 0),
                            weights=(w0, b0), **kw)
    ref = CaffeSGD(w0, b0, policy="step", lr_mult=(1, 2), decay_mult=(1, 0), **kw)
    losses = []
    for it in range(100):
        idx = np.arange(it * 32, (it + 1) * 32) % n
        losses.append(ref.step(x[idx], y[idx]))
    w, b = res.weights
    assert rel_error(w, ref.p[0]) <= TOL
    assert rel_error(b, ref.p[1]) <= TOL
    got = [h["loss"] for h in res.history["iterations"]]
    np.testing.assert_allclose(got, losses, rtol=1e-5)
    assert [h["lr"] for h in res.history["iterations"]][49:51] == pytest.approx([0.01, 0.001])
