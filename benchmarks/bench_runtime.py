"""edgebrew's C runtime side by side with OpenCV DNN and onnxruntime, in one run.

    python3 benchmarks/bench_runtime.py [--nets a,b] [--threads 1,2] [--runs 20]
                                        [--precision fp32|int8|fp16]

Each (engine, net, threads) runs in its own subprocess, so load time and peak RSS are its own.
Nets use the zoo prototxts with random weights (open_nsfw with its real weights). The table
gives absolute edgebrew figures and the peers as ratios: peer / edgebrew for latency and load
(> 1: edgebrew is faster), and for memory (peak RSS above the process's footprint after its
imports, i.e. what loading and running the model added). onnxruntime runs when edgebrew can export ONNX
(edgebrew.export_onnx); otherwise its column says why not.

``--precision int8`` benchmarks int8 bundles (calibrated on 16 random-normal inputs: fine for
timing, not for accuracy) and onnxruntime on their QDQ export (its int8 kernels); OpenCV DNN
has no int8 path for Caffe models and runs float32. ``fp16`` stores the weights as float16 (the
runtime computes in float32). The size column is the bundle's size against the float32 one.
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

DEFAULT_NETS = ["lenet", "cifar10_quick", "squeezenet_v1_0", "mobilenet_v1", "bvlc_googlenet",
                "resnet50", "mtcnn_det2", "ultraface_slim320", "mobilenet_ssd", "open_nsfw"]


def prepare(net: str, workdir: Path, precision: str = "fp32") -> dict:
    """Prototxt, caffemodel (random weights except open_nsfw) and the .brew for one net."""
    import edgebrew
    from caffe_files import random_weights, write_caffemodel
    if net == "open_nsfw":
        proto = SHARED / "models" / "open_nsfw" / "deploy.prototxt"
        weights = SHARED / "models" / "open_nsfw" / "resnet_50_1by2_nsfw.caffemodel"
    else:
        proto = SHARED / "models" / "zoo" / net / "deploy.prototxt"
        g = edgebrew.load_caffe(proto)
        inputs = {t.name: (1, *t.shape[1:]) for t in g.inputs}
        g = edgebrew.load_caffe(proto, inputs=inputs)
        weights = workdir / f"{net}.caffemodel"
        write_caffemodel(weights, random_weights(g, seed=0))
    g = edgebrew.load_caffe(proto)
    inputs = {t.name: (1, *t.shape[1:]) for t in g.inputs}
    bundle = edgebrew.convert(proto, weights, inputs=inputs)
    fp32_bytes = len(bundle.to_bytes())
    if precision != "fp32":
        calib = None
        if precision == "int8":
            shape = bundle.graph.shapes[bundle.graph.inputs[0].name]
            calib = np.random.default_rng(0).standard_normal((16, *shape[1:]), dtype=np.float32)
        bundle = edgebrew.convert(proto, weights, inputs=inputs, quantize=precision,
                                  calibration=calib, progress=False)
    brew = bundle.save(workdir / f"{net}.brew")
    onnx_path = None
    if hasattr(edgebrew, "export_onnx"):
        onnx_path = workdir / f"{net}.onnx"
        edgebrew.export_onnx(brew, onnx_path)
    return {"prototxt": str(proto), "caffemodel": str(weights), "brew": str(brew),
            "onnx": str(onnx_path) if onnx_path else None, "inputs": inputs,
            "size_ratio": len(bundle.to_bytes()) / fp32_bytes}


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker(engine: str, spec: dict, threads: int, runs: int) -> dict:
    """Load and run one engine; imports happen before the clock starts, and memory is the peak
    RSS above what the process held after its imports (the model's own footprint)."""
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in spec["inputs"].items()}
    if engine == "edgebrew":
        import edgebrew
    elif engine == "opencv":
        import cv2
        cv2.setNumThreads(threads)
    else:
        import onnxruntime as ort
    base = _status_mib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if engine == "edgebrew":
        sess = edgebrew.Session(spec["brew"], threads=threads)
        run = lambda: sess.run(feeds)  # noqa: E731
    elif engine == "opencv":
        net = cv2.dnn.readNetFromCaffe(spec["prototxt"], spec["caffemodel"])
        outs = net.getUnconnectedOutLayersNames()

        def run():
            for k, v in feeds.items():
                net.setInput(v, k)
            return net.forward(outs)
    else:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(spec["onnx"], opts, providers=["CPUExecutionProvider"])
        run = lambda: sess.run(None, feeds)  # noqa: E731
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    peak = _status_mib("VmHWM")
    return {"load_ms": load * 1e3, "first_ms": first * 1e3,
            "median_ms": float(np.median(times)) * 1e3,
            "p90_ms": float(np.percentile(times, 90)) * 1e3,
            "peak_rss_mib": max(peak - base, 0.1)}


def measure(engine, spec, threads, runs):
    cmd = [sys.executable, __file__, "--worker", engine, json.dumps(spec), str(threads), str(runs)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:60]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]),
                                int(sys.argv[5]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(DEFAULT_NETS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--precision", choices=("fp32", "int8", "fp16"), default="fp32")
    args = ap.parse_args()
    try:
        import onnxruntime  # noqa: F401
        have_ort = True
    except ImportError:
        have_ort = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets.split(","):
            spec = prepare(net, Path(tmp), args.precision)
            for threads in (int(t) for t in args.threads.split(",")):
                eb = measure("edgebrew", spec, threads, args.runs)
                cv = measure("opencv", spec, threads, args.runs)
                if not have_ort:
                    ort = {"error": "onnxruntime not installed"}
                elif not spec["onnx"]:
                    ort = {"error": "no ONNX export yet"}
                else:
                    ort = measure("onnxruntime", spec, threads, args.runs)
                eb["size_ratio"] = spec["size_ratio"]
                rows.append((net, threads, eb, cv, ort))
                print_row(*rows[-1], header=len(rows) == 1)


def ratio(peer, eb, key):
    if "error" in peer:
        return peer["error"]
    if "error" in eb:
        return "-"
    return f"{peer[key] / eb[key]:.2f}x"


def print_row(net, threads, eb, cv, ort, header=False):
    if header:
        print(f"{'net':18} {'thr':>3} | {'edgebrew median':>15} {'load':>8} {'mem MiB':>8} | "
              f"{'OpenCV/eb lat':>13} {'load':>6} {'RSS':>6} | {'ORT/eb lat':>10} {'load':>6} "
              f"{'RSS':>6} | {'size':>5}")
    if "error" in eb:
        print(f"{net:18} {threads:>3} | edgebrew failed: {eb['error']}")
        return
    print(f"{net:18} {threads:>3} | {eb['median_ms']:12.2f} ms {eb['load_ms']:6.1f}ms "
          f"{eb['peak_rss_mib']:8.1f} | {ratio(cv, eb, 'median_ms'):>13} "
          f"{ratio(cv, eb, 'load_ms'):>6} {ratio(cv, eb, 'peak_rss_mib'):>6} | "
          f"{ratio(ort, eb, 'median_ms'):>10} {ratio(ort, eb, 'load_ms'):>6} "
          f"{ratio(ort, eb, 'peak_rss_mib'):>6} | {eb.get('size_ratio', 1.0):4.2f}x", flush=True)


if __name__ == "__main__":
    main()
