"""Shared pieces of the fine-tuning tests: small bundles with a trainable layer, and an
independent NumPy implementation of Caffe's solver and losses (written from Caffe's equations,
not from our C code)."""
from __future__ import annotations

import numpy as np

from edgebrew.bundle import Bundle
from edgebrew.ir import Graph, Node, TensorInfo


def ip_bundle(k=12, n=5, batch=1, bias=True, mults=((1.0, 1.0), (2.0, 0.0)), seed=0,
              tail=("Softmax",)):
    """data (batch, k) -> InnerProduct 'fc' (n) -> Softmax 'prob'."""
    rng = np.random.default_rng(seed)
    w = {"fc.w": (rng.standard_normal((n, k)) * 0.1).astype(np.float32)}
    if bias:
        w["fc.b"] = (rng.standard_normal(n) * 0.1).astype(np.float32)
    attrs = {"num_output": n, "bias_term": bias}
    nodes = [Node("fc", "InnerProduct", ["data"], ["fc"], attrs, list(w),
                  [tuple(m) for m in mults[:len(w)]] if mults else [])]
    prev = "fc"
    for i, t in enumerate(tail):
        nodes.append(Node(f"t{i}", t, [prev], [f"t{i}"], {}))
        prev = f"t{i}"
    g = Graph("ipnet", [TensorInfo("data", (batch, k))], nodes, [prev], w)
    g.infer_shapes()
    return Bundle(g)


def conv_bundle(c=4, n=3, h=2, w=3, seed=0):
    """data (1, c, h, w) -> ReLU -> 1x1 Convolution 'score' (n) -> Softmax."""
    rng = np.random.default_rng(seed)
    ws = {"score.w": (rng.standard_normal((n, c, 1, 1)) * 0.3).astype(np.float32),
          "score.b": (rng.standard_normal(n) * 0.1).astype(np.float32)}
    nodes = [Node("relu", "ReLU", ["data"], ["r"], {}),
             Node("score", "Convolution", ["r"], ["score"],
                  {"num_output": n, "kernel": (1, 1)}, list(ws)),
             Node("prob", "Softmax", ["score"], ["prob"], {})]
    g = Graph("convnet", [TensorInfo("data", (1, c, h, w))], nodes, ["prob"], ws)
    g.infer_shapes()
    return Bundle(g)


# ---- Caffe, in NumPy (float64) -------------------------------------------------------------
def caffe_lr(policy, it, base_lr, gamma=0.1, stepsize=1, power=1.0, max_iter=1, stepvalue=(),
             state=None):
    """SGDSolver::GetLearningRate. `state` holds multistep's current_step between calls."""
    if policy == "fixed":
        return base_lr
    if policy == "step":
        return base_lr * gamma ** (it // stepsize)
    if policy == "exp":
        return base_lr * gamma ** it
    if policy == "inv":
        return base_lr * (1 + gamma * it) ** (-power)
    if policy == "multistep":
        if state["step"] < len(stepvalue) and it >= stepvalue[state["step"]]:
            state["step"] += 1
        return base_lr * gamma ** state["step"]
    if policy == "poly":
        return base_lr * (1 - it / max_iter) ** power
    if policy == "sigmoid":
        return base_lr * (1 / (1 + np.exp(-gamma * (it - stepsize))))
    raise ValueError(policy)


def softmax_loss_grad(scores, labels, normalization="VALID", ignore_label=None):
    """SoftmaxWithLoss over axis 1 of scores (batch, channels, inner); labels (batch, inner)."""
    s = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    lab = labels.astype(np.int64)
    valid = np.ones(lab.shape, bool) if ignore_label is None else lab != ignore_label
    safe = np.where(valid, lab, 0)
    pl = np.take_along_axis(p, safe[:, None, :], axis=1)[:, 0, :]
    loss = -np.sum(np.where(valid, np.log(np.maximum(pl, np.finfo(np.float32).tiny)), 0))
    g = p.copy()
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, safe[:, None, :], 1.0, axis=1)
    g -= onehot
    g *= valid[:, None, :]
    b, _, inner = scores.shape
    norm = {"FULL": b * inner, "VALID": valid.sum(), "BATCH_SIZE": b, "NONE": 1}[normalization]
    norm = max(float(norm), 1.0)
    return loss / norm, g / norm


def euclidean_loss_grad(scores, targets):
    b = scores.shape[0]
    d = scores - targets
    return np.sum(d * d) / b / 2, d / b


class CaffeSGD:
    """Caffe's Solver::Step + SGD/Nesterov/Adam ApplyUpdate for one InnerProduct on features."""

    def __init__(self, w, b, *, base_lr=0.01, momentum=0.9, weight_decay=5e-4, policy="fixed",
                 gamma=0.1, stepsize=1, power=1.0, max_iter=1, stepvalue=(), lr_mult=(1, 1),
                 decay_mult=(1, 1), iter_size=1, clip=None, reg="L2", solver="SGD",
                 momentum2=0.999, delta=1e-8, loss="softmax", normalization="VALID",
                 ignore_label=None):
        self.p = [np.asarray(w, np.float64).copy()]
        if b is not None:
            self.p.append(np.asarray(b, np.float64).copy())
        self.h = [np.zeros_like(x) for x in self.p]
        self.h2 = [np.zeros_like(x) for x in self.p]
        self.it, self.state = 0, {"step": 0}
        self.kw = dict(base_lr=base_lr, gamma=gamma, stepsize=stepsize, power=power,
                       max_iter=max_iter, stepvalue=stepvalue)
        self.momentum, self.wd, self.lr_mult, self.decay_mult = momentum, weight_decay, \
            lr_mult, decay_mult
        self.policy, self.iter_size, self.clip, self.reg, self.solver = policy, iter_size, \
            clip, reg, solver
        self.m2, self.delta, self.loss, self.norm, self.ignore = momentum2, delta, loss, \
            normalization, ignore_label

    def forward_backward(self, x, y):
        """x (batch, k) or (batch, c, s); y labels. Returns (loss, [dW, db])."""
        x = np.asarray(x, np.float64)
        x3 = x if x.ndim == 3 else x[:, :, None]
        w = self.p[0]
        scores = np.einsum("nk,bks->bns", w, x3)
        if len(self.p) > 1:
            scores += self.p[1][None, :, None]
        if self.loss == "softmax":
            lab = np.asarray(y).reshape(x3.shape[0], x3.shape[2])
            loss, g = softmax_loss_grad(scores, lab, self.norm, self.ignore)
        else:
            loss, g = euclidean_loss_grad(scores, np.asarray(y, np.float64).reshape(scores.shape))
        grads = [np.einsum("bns,bks->nk", g, x3)]
        if len(self.p) > 1:
            grads.append(g.sum(axis=(0, 2)))
        # Caffe does not compute the gradient of a blob whose lr_mult is 0
        grads = [gr if self.lr_mult[i] != 0 else np.zeros_like(gr) for i, gr in enumerate(grads)]
        return loss, grads

    def step(self, x, y):
        """One Solver::Step iteration over iter_size equal passes of (x, y)."""
        xs, ys = np.array_split(np.asarray(x), self.iter_size), \
            np.array_split(np.asarray(y), self.iter_size)
        diff = [np.zeros_like(p) for p in self.p]
        loss = 0.0
        for xi, yi in zip(xs, ys):
            l, g = self.forward_backward(xi, yi)
            loss += l
            diff = [d + gi for d, gi in zip(diff, g)]
        rate = caffe_lr(self.policy, self.it, state=self.state, **self.kw)
        if self.clip is not None:
            l2 = np.sqrt(sum(np.sum(d * d) for d in diff))
            if l2 > self.clip:
                diff = [d * (self.clip / l2) for d in diff]
        for i, p in enumerate(self.p):
            d = diff[i] / self.iter_size
            local_decay = self.wd * self.decay_mult[i]
            if local_decay:
                d = d + local_decay * (np.sign(p) if self.reg == "L1" else p)
            local_rate = rate * self.lr_mult[i]
            if self.solver == "SGD":
                self.h[i] = self.momentum * self.h[i] + local_rate * d
                upd = self.h[i]
            elif self.solver == "Nesterov":
                prev = self.h[i].copy()
                self.h[i] = self.momentum * self.h[i] + local_rate * d
                upd = (1 + self.momentum) * self.h[i] - self.momentum * prev
            else:  # Adam
                t = self.it + 1
                self.h[i] = self.momentum * self.h[i] + (1 - self.momentum) * d
                self.h2[i] = self.m2 * self.h2[i] + (1 - self.m2) * d * d
                corr = np.sqrt(1 - self.m2 ** t) / (1 - self.momentum ** t)
                upd = local_rate * corr * self.h[i] / (np.sqrt(self.h2[i]) + self.delta)
            self.p[i] = p - upd
        self.it += 1
        return loss / self.iter_size
