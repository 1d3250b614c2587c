"""edgebrew's ONNX export next to the two Caffe->ONNX converters on PyPI, on every zoo net and
open_nsfw: does each convert the net, does onnxruntime load the result, do its outputs match the
reference executor (relative error <= 1e-4), and how fast does onnxruntime run it.

    python3 benchmarks/onnx_peers.py [--nets a,b] [--runs 20] [--workdir DIR] [--json OUT]

The peers are installed by this script, each in its own venv under /tmp/edgebrew_onnx_peers/,
with ``pip install --no-deps`` (caffe2onnx 2.0.1 pins onnx 1.6.0, which has no wheel for Python
3.11; caffe-onnx 0.1.2 pins protobuf < 4 and installs top-level ``src``/``proto`` packages and a
second ``caffe2onnx`` script) plus onnx 1.14.1, protobuf 3.20.3 and numpy < 2 by hand, and run
with ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``. Neither is a dependency of the project.

Every converter gets the same files: the zoo prototxt as published (with its batch set to 1, and
FCN-8s reduced to 128x128, in a rewritten copy when the published shape differs; FCN-32s, which
only has a train/val net, in the deploy form edgebrew imports: its layers with an explicit
input), the caffemodel the zoo ships, or random weights (tests/caffe_files.py, seed 0) written as
a V2 caffemodel, and open_nsfw's real weights. Outputs are compared by Caffe top name (a peer's
outputs are matched by name, else in order); the first non-weight input of a peer's model is fed
the same array. Latency: onnxruntime, one thread, all graph optimizations, the median of
``--runs`` runs after 3 warm-ups, each converter's file in its own session, in the same process;
the ratio is peer / edgebrew (> 1: the edgebrew export runs faster).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEBREW_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

VENVS = Path("/tmp/edgebrew_onnx_peers")
PEERS = {
    # name: (pip requirement, command line given prototxt, caffemodel, output path)
    "caffe2onnx": ("caffe2onnx==2.0.1",
                   lambda py, p, w, out: [py, "-m", "caffe2onnx.convert", "--prototxt", p,
                                          "--caffemodel", w, "--onnx", out]),
    "caffe-onnx": ("caffe-onnx==0.1.2",
                   lambda py, p, w, out: [py, "-m", "src.cli", p, w, Path(out).stem,
                                          str(Path(out).parent)]),
}
PEER_SUPPORT = ["onnx==1.14.1", "protobuf==3.20.3", "numpy<2"]

ZOO = ["lenet", "cifar10_quick", "cifar10_full", "bvlc_reference_caffenet", "bvlc_alexnet",
       "bvlc_googlenet", "squeezenet_v1_0", "mobilenet_v1", "resnet50", "resnet50_stem_test",
       "vgg16", "mtcnn_det1", "mtcnn_det2", "fcn8s_voc", "fcn32s_voc", "mobilenet_ssd",
       "ssd300_vgg16_voc0712", "ultraface_slim320", "legacy_v0_lenet",
       "legacy_v0_caffenet_padding", "legacy_v1_lenet", "legacy_v1_caffenet",
       "legacy_v1_cifar10_quick", "open_nsfw"]
SPATIAL = {"fcn8s_voc": (128, 128)}
TOL = 1e-4


# ------------------------------------------------------------------------------ peers
def setup_peer(name: str) -> tuple[str | None, str]:
    """(python of the peer's venv, "") or (None, why it could not be installed)."""
    req, _ = PEERS[name]
    venv = VENVS / name
    py = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return str(py), ""
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "-q", "--no-deps", req, *PEER_SUPPORT]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed: {_last_line(r.stderr or r.stdout)}"
    marker.write_text(req)
    return str(py), ""


def convert_with_peer(name, py, prototxt, caffemodel, out: Path, timeout=600):
    """('ok', seconds) or ('failed', message)."""
    _, cmd = PEERS[name]
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd(py, str(prototxt), str(caffemodel), str(out)), capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=out.parent)
    except subprocess.TimeoutExpired:
        return "failed", f"no result after {timeout} s"
    if r.returncode != 0 or not out.exists():
        if r.returncode < 0:
            return "failed", (f"killed by signal {-r.returncode} (out of memory?) after "
                              f"{time.perf_counter() - t:.0f} s")
        why = _last_line(r.stderr) or f"exit {r.returncode}, no file; last output: " \
            f"{_last_line(r.stdout)}"
        return "failed", why
    return "ok", time.perf_counter() - t


def _last_line(text: str) -> str:
    lines = [l.strip() for l in (text or "").strip().splitlines() if l.strip()]
    return lines[-1][:160] if lines else ""


# ------------------------------------------------------------------------------ nets
def prepare(net: str, workdir: Path) -> dict:
    """Files every converter gets, the IR graph (batch 1) and the reference outputs."""
    import edgebrew
    from caffe_files import random_weights, write_caffemodel
    from google.protobuf import text_format
    from edgebrew.importer.proto import caffe_pb2

    folder = SHARED / "models" / ("open_nsfw" if net == "open_nsfw" else f"zoo/{net}")
    prototxt = folder / ("val.prototxt" if net == "fcn32s_voc" else "deploy.prototxt")
    probe = edgebrew.load_caffe(prototxt, inputs={"data": (1, 3, 224, 224)}
                                if net == "fcn32s_voc" else None)
    inputs = {t.name: (1, *t.shape[1:-2], *SPATIAL[net]) if net in SPATIAL
              else (1, *t.shape[1:]) for t in probe.inputs}
    graph = edgebrew.load_caffe(prototxt, inputs=inputs)
    given = folder / ("resnet_50_1by2_nsfw.caffemodel" if net == "open_nsfw"
                      else f"{net}.caffemodel")
    if given.exists():
        weights = given
    else:
        weights = workdir / f"{net}.caffemodel"
        if not weights.exists():
            write_caffemodel(weights, random_weights(graph, seed=0),
                             types={n.name: n.op_type for n in graph.nodes}, name=net)
    # The prototxt the converters read: as published unless its inputs differ from `inputs`.
    net_param = caffe_pb2.NetParameter()
    text_format.Parse(prototxt.read_text(), net_param)
    if net == "fcn32s_voc" or any(tuple(t.shape) != inputs[t.name] for t in probe.inputs):
        given_proto = prototxt
        prototxt = workdir / f"{net}.prototxt"
        _set_inputs(net_param, graph, inputs, deploy_form=net == "fcn32s_voc")
        prototxt.write_text(text_format.MessageToString(net_param))
        graph = edgebrew.load_caffe(prototxt, inputs=inputs)
        assert [n.name for n in graph.nodes] == \
            [n.name for n in edgebrew.load_caffe(given_proto, inputs=inputs).nodes]
    graph = edgebrew.load_caffe(prototxt, weights, inputs=inputs)
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}
    ref = edgebrew.reference.run(graph, feeds)
    return {"prototxt": prototxt, "caffemodel": weights, "graph": graph, "feeds": feeds,
            "ref": ref}


def _set_inputs(net, graph, inputs, deploy_form):
    """Batch-1 (resized) inputs in whichever form the prototxt declares them."""
    if deploy_form:                         # drop layers edgebrew does not import (data, loss)
        kept = {n.name for n in graph.nodes}
        layers = [l for l in net.layer if l.name in kept]
        del net.layer[:]
        net.layer.extend(layers)
        for name, shape in inputs.items():
            net.input.append(name)
            net.input_shape.add().dim.extend(shape)
        return
    for i, name in enumerate(net.input):
        shape = inputs[name]
        if len(net.input_shape):
            del net.input_shape[i].dim[:]
            net.input_shape[i].dim.extend(shape)
        else:
            net.input_dim[4 * i:4 * i + 4] = list(shape)
    for layer in net.layer:
        if layer.type == "Input":
            for j, top in enumerate(layer.top):
                del layer.input_param.shape[j].dim[:]
                layer.input_param.shape[j].dim.extend(inputs[top])


# ------------------------------------------------------------------------------ checks
def evaluate(path: Path, prep: dict, runs: int) -> dict:
    """Load in onnxruntime, run, compare with the reference, time."""
    import onnx
    import onnxruntime as ort
    from helpers import rel_error
    ort.set_default_logger_severity(4)
    res = {}
    try:
        model = onnx.load(str(path))
        inits = {t.name for t in model.graph.initializer}
        res["weights_as_inputs"] = any(i.name in inits for i in model.graph.input)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:                     # noqa: BLE001 - any failure is the finding
        res["status"] = f"ORT rejects: {_ort_message(e)}"
        return res
    data_inputs = [i.name for i in sess.get_inputs() if i.name not in inits]
    feeds = dict(zip(data_inputs, prep["feeds"].values()))
    try:
        outs = sess.run(None, feeds)
    except Exception as e:                     # noqa: BLE001
        res["status"] = f"ORT run fails: {_ort_message(e)}"
        return res
    names = [o.name for o in sess.get_outputs()]
    graph, ref = prep["graph"], prep["ref"]
    errors = []
    for i, t in enumerate(graph.output_names):
        if t in names:
            got = outs[names.index(t)]
        elif len(names) == len(graph.output_names):
            got = outs[i]
        else:
            errors.append(f"{t}: no such output")
            continue
        want = ref[t]
        if "DetectionOutput" in {n.op_type for n in graph.nodes if t in n.outputs}:
            got, want = _sorted_rows(got), _sorted_rows(want)
        if got.size != want.size:
            errors.append(f"{t}: shape {tuple(got.shape)}, Caffe's {tuple(want.shape)}")
            continue
        err = rel_error(got.reshape(want.shape), want)
        if not err <= TOL:
            errors.append(f"{t}: rel err {err:.2g}")
    res["status"] = "match" if not errors else "WRONG (" + "; ".join(errors) + ")"
    if not errors and runs:
        res["_session"] = (sess, feeds)
    return res


def time_sessions(results: dict, runs: int) -> None:
    """Median latency of each converter's session, timed in interleaved rounds (so that a
    change of machine load hits every converter alike)."""
    timed = {who: r.pop("_session") for who, r in results.items() if "_session" in r}
    for sess, feeds in timed.values():
        for _ in range(3):
            sess.run(None, feeds)
    times = {who: [] for who in timed}
    rounds = 5
    for _ in range(rounds):
        for who, (sess, feeds) in timed.items():
            for _ in range(max(1, runs // rounds)):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                times[who].append(time.perf_counter() - t0)
    for who, t in times.items():
        results[who]["ms"] = 1000 * float(np.median(t))


def _ort_message(e) -> str:
    """The informative part of an onnxruntime exception."""
    text = " ".join(str(e).split())
    for cut in ("Status Message: ", "] : "):
        if cut in text:
            text = text.split(cut)[-1]
    return text[:150]


def _sorted_rows(a):
    rows = np.asarray(a).reshape(-1, 7)
    rows = rows[np.any(rows != 0, axis=1)]          # a peer may pad with zero rows
    return rows[np.lexsort((rows[:, 1], -rows[:, 2]))]


def run_net(net: str, workdir: Path, peers: dict, runs: int, reuse: bool = False) -> dict:
    import edgebrew
    row = {"net": net}
    prep = prepare(net, workdir)
    out = workdir / net
    out.mkdir(exist_ok=True)
    try:
        ours = edgebrew.export_onnx((prep["prototxt"], prep["caffemodel"]), out / "edgebrew.onnx",
                                    inputs={t.name: tuple(t.shape) for t in prep["graph"].inputs})
        row["edgebrew"] = evaluate(ours, prep, runs)
    except edgebrew.EdgebrewError as e:
        row["edgebrew"] = {"status": f"refused: {e}"}
    for name, (py, why) in peers.items():
        if py is None:
            row[name] = {"status": f"not installed: {why}"}
            continue
        path = out / f"{name}.onnx"
        if not (reuse and path.exists()):
            path.unlink(missing_ok=True)
            state, detail = convert_with_peer(name, py, prep["prototxt"], prep["caffemodel"], path)
            if state != "ok":
                row[name] = {"status": f"conversion fails: {detail}"}
                continue
        row[name] = evaluate(path, prep, runs)
    time_sessions({w: row[w] for w in ["edgebrew", *peers] if w in row}, runs)
    return row


def table(rows) -> str:
    peers = list(PEERS)
    head = ["net", "edgebrew", *peers, "edgebrew ms", *[f"{p} ms (ratio)" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["net"]]
        for who in ["edgebrew", *peers]:
            s = r[who]["status"]
            if r[who].get("weights_as_inputs"):
                s += " (weights listed as inputs)"
            cells.append(s)
        ours = r["edgebrew"].get("ms")
        cells.append(f"{ours:.2f}" if ours else "-")
        for p in peers:
            ms = r[p].get("ms")
            cells.append(f"{ms:.2f} ({ms / ours:.2f}x)" if ms and ours else "-")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(ZOO))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workdir", help="keep weights and exports here (default: a temp dir)")
    ap.add_argument("--json", help="also write the rows as JSON")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the peers' files already in --workdir (to time again)")
    ap.add_argument("--table", nargs="+", metavar="JSON",
                    help="only print the table of rows saved by earlier runs (--json files; "
                         "for a net in several files, the last file's row)")
    args = ap.parse_args(argv)
    if args.table:
        by_net = {r["net"]: r for f in args.table for r in json.loads(Path(f).read_text())}
        order = {n: i for i, n in enumerate(ZOO)}      # a later file's row replaces an earlier
        print(table(sorted(by_net.values(), key=lambda r: order.get(r["net"], len(order)))))
        return 0
    peers = {name: setup_peer(name) for name in PEERS}
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="onnx_peers_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for net in [n for n in args.nets.split(",") if n]:
        t = time.perf_counter()
        try:
            row = run_net(net, workdir, peers, args.runs, args.reuse)
        except Exception as e:                 # noqa: BLE001 - report and go on
            row = {"net": net, **{w: {"status": f"benchmark error: {e}"}
                                  for w in ["edgebrew", *PEERS]}}
        rows.append(row)
        print(f"{net}: {json.dumps(row)} ({time.perf_counter() - t:.0f} s)", file=sys.stderr,
              flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
