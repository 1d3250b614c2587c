"""``edgebrew bench model.brew``: load time, first run, latency percentiles, throughput, RSS."""
from __future__ import annotations

import resource
import time

import numpy as np


def add_parser(sub):
    p = sub.add_parser("bench", help="time a bundle in the C runtime",
                       description="Measure load time, first-run time, latency (min/median/p90), "
                                   "throughput and peak memory of a bundle on random inputs.")
    p.add_argument("bundle")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.set_defaults(run=run)


def run(args):
    from ..runtime import Session
    t0 = time.perf_counter()
    session = Session(args.bundle, threads=args.threads)
    load = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in session.inputs}
    t0 = time.perf_counter()
    session.run(feeds)
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        session.run(feeds)
    times = []
    for _ in range(max(args.runs, 1)):
        t0 = time.perf_counter()
        session.run(feeds)
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {args.bundle}  threads: {args.threads}  runs: {len(t)}")
    print(f"load:      {load * 1e3:8.2f} ms")
    print(f"first run: {first * 1e3:8.2f} ms")
    print(f"latency:   min {t.min():.2f} ms  median {np.median(t):.2f} ms  "
          f"p90 {np.percentile(t, 90):.2f} ms")
    print(f"throughput: {1e3 / np.median(t):.1f} inferences/s")
    print(f"peak RSS:  {rss:.1f} MiB")
    session.close()
    return 0
