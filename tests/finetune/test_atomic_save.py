"""Saving is atomic: a child process that keeps saving (the C writer: temporary file in the same
folder, fsync, rename) is killed with SIGKILL at random moments; the bundle on disk always loads
in the C runtime and is exactly the old or exactly the new bytes, never a mix."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import edgebrew
from conftest import REPO
from edgebrew.finetune import FinetuneJob
from ft_common import ip_bundle
from helpers import c_runtime_available

pytestmark = pytest.mark.skipif(not c_runtime_available(), reason="C runtime not built")

CHILD = r"""
import sys
from pathlib import Path
from edgebrew.finetune import FinetuneJob, write_atomic
target, old_path = sys.argv[1], sys.argv[2]
old = Path(old_path).read_bytes()
job = FinetuneJob(old, num_output=300, seed=1)
print("ready", flush=True)
while True:
    job.save(target)              # the tuned bundle (eb_finetune_save)
    write_atomic(target, old)     # and back (eb_write_file_atomic)
"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("atomic")
    old = ip_bundle(k=2048, n=400, seed=3).to_bytes()          # ~3.3 MB
    (d / "old.brew").write_bytes(old)
    new = FinetuneJob(old, num_output=300, seed=1).to_bytes()
    assert new != old and FinetuneJob(old, num_output=300, seed=1).to_bytes() == new
    return d, old, new


def test_completed_save_leaves_no_temp_files(bundles, tmp_path):
    _, old, new = bundles
    target = tmp_path / "model.brew"
    target.write_bytes(old)
    FinetuneJob(old, num_output=300, seed=1).save(target)
    assert target.read_bytes() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.brew"]
    edgebrew.Session(target).close()


def test_kill_during_save_leaves_old_or_new(bundles, tmp_path):
    src, old, new = bundles
    target = tmp_path / "model.brew"
    target.write_bytes(old)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = random.Random(0)
    seen = set()
    for round_ in range(10):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(src / "old.brew")],
                                 stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        data = target.read_bytes()
        assert data in (old, new), f"round {round_}: the bundle on disk is neither old nor new"
        seen.add(data == new)
        with edgebrew.Session(target) as s:              # loads and runs in C
            s.run(np.zeros(s.inputs[0].shape, np.float32))
        for p in tmp_path.iterdir():                     # a killed writer's temporary file
            if p.name != "model.brew":
                assert p.name.startswith(".model.brew."), p.name
                p.unlink()
    assert seen  # both outcomes are legal; at least the loop ran
