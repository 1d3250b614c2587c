import os
import runpy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEBREW_SHARED", REPO.parent / "shared"))


def shared_path(*parts) -> Path:
    """A path under ../shared, or a clean skip when that material is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is not available (the shared models/goldens folder is absent)")
    return p


@pytest.fixture(scope="session")
def golden_caffemodel(tmp_path_factory):
    """Writes (once per session) the random-weight caffemodel of a golden folder with the
    golden's own randnet.py, which checks the bytes against the recorded sha256."""
    cache = {}
    out_dir = tmp_path_factory.mktemp("golden_models")

    def make(name):
        if name not in cache:
            folder = shared_path("golden", name)
            randnet = runpy.run_path(str(shared_path("golden", "randnet.py")))
            import json
            manifest = json.loads((folder / "manifest.json").read_text())
            path = out_dir / f"{name}.caffemodel"
            size, sha = randnet["write_caffemodel"](manifest, str(path))
            assert sha == manifest["caffemodel_sha256"], f"{name}: randnet wrote other bytes"
            cache[name] = path
        return cache[name]
    return make
