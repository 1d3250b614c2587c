"""Gradients of InnerProduct (and 1x1 Convolution) + SoftmaxWithLoss / EuclideanLoss in the C
runtime against finite differences of its own loss and against the analytic NumPy gradient.

The C gradient is read through one plain SGD step (lr 1, momentum 0, no decay: w' = w - grad)."""
import numpy as np
import pytest

from edgebrew.finetune import FinetuneJob
from ft_common import conv_bundle, euclidean_loss_grad, ip_bundle, softmax_loss_grad
from helpers import c_runtime_available, rel_error

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")

PLAIN = dict(base_lr=1.0, momentum=0.0, weight_decay=0.0, lr_mult=(1, 1), decay_mult=(0, 0))


def c_gradient(job, feats, labels):
    w0, b0 = job.weights
    job.step(feats, labels)
    w1, b1 = job.weights
    job.set_weights(w0, b0)
    return w0.astype(np.float64) - w1, b0.astype(np.float64) - b1


def finite_differences(job, feats, labels, eps=1e-2, n_checks=25, seed=0):
    """Central differences of the C loss at random weight/bias entries."""
    w0, b0 = job.weights
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_checks):
        which = rng.integers(0, 2)
        arr = (w0 if which == 0 else b0).copy()
        i = tuple(rng.integers(0, s) for s in arr.shape)
        vals = []
        for sgn in (1, -1):
            a = arr.copy()
            a[i] = np.float32(arr[i] + sgn * eps)
            job.set_weights(a, b0) if which == 0 else job.set_weights(w0, a)
            vals.append((job.evaluate(feats, labels)[0], float(a[i])))
        job.set_weights(w0, b0)
        (lp, xp), (lm, xm) = vals
        out.append((which, i, (lp - lm) / (xp - xm)))
    return out


@pytest.mark.parametrize("normalization", ["VALID", "BATCH_SIZE"])
def test_inner_product_softmax(normalization):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    job = FinetuneJob(ip_bundle(12, 5), normalization=normalization, **PLAIN)
    gw, gb = c_gradient(job, x, y)
    w0, b0 = job.weights
    _, g = softmax_loss_grad((x.astype(np.float64) @ w0.T.astype(np.float64) + b0)[:, :, None],
                             y[:, None], normalization)
    assert rel_error(gw, g[:, :, 0].T @ x) <= 1e-5
    assert rel_error(gb, g.sum(axis=(0, 2))) <= 1e-5
    for which, i, fd in finite_differences(job, x, y):
        an = (gw if which == 0 else gb)[i]
        assert abs(fd - an) <= 2e-3 * max(np.abs(gw).max(), 1e-3), (which, i, fd, an)


def test_conv1x1_spatial_softmax_with_ignore_label():
    """A 1x1 Convolution over 2 x 3 positions: the loss runs over channels at every position
    (Caffe's inner_num), ignored positions give no gradient."""
    b = conv_bundle(c=4, n=3, h=2, w=3)
    job = FinetuneJob(b, ignore_label=-1, **PLAIN)
    assert (job.layer, job.feature_size, job.spatial, job.num_output) == ("score", 24, 6, 3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 2, 3)).astype(np.float32)
    feats = job.features(x)
    np.testing.assert_array_equal(feats, np.maximum(x, 0).reshape(5, 24))   # through ReLU
    y = rng.integers(0, 3, (5, 6)).astype(np.float32)
    y[0, :2] = -1
    gw, gb = c_gradient(job, feats, y)
    w0, b0 = job.weights
    x3 = feats.reshape(5, 4, 6).astype(np.float64)
    scores = np.einsum("nk,bks->bns", w0.astype(np.float64), x3) + b0[None, :, None]
    _, g = softmax_loss_grad(scores, y, "VALID", ignore_label=-1)
    assert rel_error(gw, np.einsum("bns,bks->nk", g, x3)) <= 1e-5
    assert rel_error(gb, g.sum(axis=(0, 2))) <= 1e-5
    for which, i, fd in finite_differences(job, feats, y):
        an = (gw if which == 0 else gb)[i]
        assert abs(fd - an) <= 2e-3 * max(np.abs(gw).max(), 1e-3), (which, i, fd, an)


def test_euclidean():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 12)).astype(np.float32)
    t = rng.standard_normal((10, 5)).astype(np.float32)
    job = FinetuneJob(ip_bundle(12, 5), loss="euclidean", **PLAIN)
    gw, gb = c_gradient(job, x, t)
    w0, b0 = job.weights
    _, g = euclidean_loss_grad(x.astype(np.float64) @ w0.T.astype(np.float64) + b0, t)
    assert rel_error(gw, g.T @ x) <= 1e-5
    assert rel_error(gb, g.sum(axis=0)) <= 1e-5
    for which, i, fd in finite_differences(job, x, t):
        an = (gw if which == 0 else gb)[i]
        assert abs(fd - an) <= 2e-3 * max(np.abs(gw).max(), 1e-3), (which, i, fd, an)
