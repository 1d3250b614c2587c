"""Builds ``edgebrew._libedgebrew``: libedgebrew (edgebrew/kernels_c) as a cffi API-mode extension.

Used two ways:

* by setuptools at ``pip install`` (``cffi_modules`` in setup.py), and
* directly, for quick development rebuilds in place::

      python3 edgebrew/runtime/_build_libedgebrew.py     # -> edgebrew/_libedgebrew*.so

The sources are every ``.c`` file under ``edgebrew/kernels_c/src`` (recursively, so new op and
kernel files are picked up); the cdef is the public header ``edgebrew.h`` itself (plus the
private ``eb_missing_kernels`` diagnostic), so the two cannot drift apart.

``EDGEBREW_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer. Python
itself is not built with ASan, so importing such an extension needs the ASan runtime preloaded,
e.g. ``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python3 ...``;
the CMake build's ``edgebrew_test`` program is the main vehicle for sanitizer runs.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))          # the repository (setup.py's folder)
C_DIR = os.path.join("edgebrew", "kernels_c")          # relative to ROOT, as setuptools wants
MODULE = "edgebrew._libedgebrew"


def sources(absolute: bool = False) -> list[str]:
    """Every .c file under kernels_c/src, sorted; relative to the repository root (what
    setuptools wants) unless `absolute`."""
    found = glob.glob(os.path.join(ROOT, C_DIR, "src", "**", "*.c"), recursive=True)
    return sorted(p if absolute else os.path.relpath(p, ROOT) for p in found)


def headers(absolute: bool = False) -> list[str]:
    """Every .h file of the C runtime (listed as `depends`: rebuilds and sdists see them)."""
    found = glob.glob(os.path.join(ROOT, C_DIR, "**", "*.h"), recursive=True)
    return sorted(p if absolute else os.path.relpath(p, ROOT) for p in found)


def cdef_from_header(text: str) -> str:
    """The declarations of edgebrew.h in a form cffi's cdef accepts: comments, include guards,
    #include and the C++ extern "C" wrapper are dropped; integer #defines are kept."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out, skip = [], 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            directive = s[1:].strip()
            if directive.startswith("ifdef __cplusplus"):
                skip += 1
            elif directive.startswith("endif") and skip:
                skip -= 1
            elif directive.startswith("define") and skip == 0:
                parts = directive.split()
                if len(parts) == 3 and re.fullmatch(r"-?\d+", parts[2]):
                    out.append(f"#define {parts[1]} {parts[2]}")
            continue
        if not skip:
            out.append(line)
    return "\n".join(out)


def compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-std=c11", "-pthread"]
    ldflags = ["-pthread"]
    if os.environ.get("EDGEBREW_SANITIZE", "") not in ("", "0"):
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-fno-omit-frame-pointer", "-O1", "-g"]
        cflags += san
        ldflags += san
    else:
        cflags += ["-O3"]
    return cflags, ldflags


def make_ffibuilder(absolute: bool = False) -> FFI:
    """The FFI builder; paths relative to the repository root (setuptools runs from there),
    or absolute (FFI.compile changes into its temporary directory)."""
    base = ROOT if absolute else ""
    header = os.path.join(ROOT, C_DIR, "include", "edgebrew.h")
    with open(header, encoding="utf-8") as f:
        cdef = cdef_from_header(f.read())
    cdef += "\nint eb_missing_kernels(char *buf, size_t n);\n"
    cflags, ldflags = compile_args()
    ffi = FFI()
    ffi.cdef(cdef)
    ffi.set_source(
        MODULE,
        '#include "edgebrew.h"\n#include "core/diag.h"\n',
        sources=sources(absolute),
        depends=headers(absolute),
        include_dirs=[os.path.join(base, C_DIR, "include"), os.path.join(base, C_DIR, "src")],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        libraries=["m"],
    )
    return ffi


ffibuilder = make_ffibuilder()


def build_in_place(verbose: bool = False) -> str:
    """Compiles into build/cffi and copies the extension to edgebrew/; returns its path."""
    tmpdir = os.path.join(ROOT, "build", "cffi")
    built = make_ffibuilder(absolute=True).compile(tmpdir=tmpdir, verbose=verbose)
    target = os.path.join(ROOT, "edgebrew", os.path.basename(built))
    # Another build's file (e.g. pip's _libedgebrew.abi3.so) would shadow or be shadowed by
    # this one at import: keep only the new one.
    for old in glob.glob(os.path.join(ROOT, "edgebrew", "_libedgebrew*.so")):
        if os.path.abspath(old) != os.path.abspath(target):
            os.remove(old)
    shutil.copyfile(built, target + ".tmp")
    os.replace(target + ".tmp", target)  # atomic: a running interpreter keeps its mapping
    return target


if __name__ == "__main__":
    path = build_in_place(verbose="-v" in sys.argv)
    print(f"built {path}")
