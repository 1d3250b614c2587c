"""The ``edgebrew`` command: one module per subcommand, each adding its parser here."""
from __future__ import annotations

import argparse
import sys

from ..errors import EdgebrewError
from . import bench_cmd, convert_cmd, inspect_cmd, run_cmd

COMMANDS = (inspect_cmd, convert_cmd, run_cmd, bench_cmd)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = argparse.ArgumentParser(prog="edgebrew", description="Bring trained Caffe networks "
                                     "to edge devices.")
    parser.add_argument("--version", action="version", version=f"edgebrew {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS:
        cmd.add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgebrewError as e:
        print(f"edgebrew: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgebrew: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def parse_input_spec(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME:N,C,H,W`` -> (NAME, (N, C, H, W)), for --input."""
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME:N,C,H,W with positive integers, got "
                                         f"'{text}'")
    return name, shape
