"""The ``edgebrew`` command: one module per subcommand, each adding its parser here."""
from __future__ import annotations

import argparse
import sys

from ..errors import EdgebrewError
from . import (bench_cmd, compare_cmd, convert_cmd, export_onnx_cmd, finetune_cmd, inspect_cmd,
               run_cmd)

COMMANDS = (inspect_cmd, convert_cmd, run_cmd, bench_cmd, compare_cmd, export_onnx_cmd,
            finetune_cmd)


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


def add_optimizer_args(p) -> None:
    """-O0, --passes a,b,c and --skip-pass x (repeatable), shared by convert and inspect."""
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1), default=1, metavar="LEVEL",
                   help="-O0: no optimizer passes and no in-place/zero-copy memory placement "
                        "(default -O1: all)")
    from ..optimizer import PLANNER_OPTIONS, default_pipeline
    names = ", ".join(default_pipeline() + list(PLANNER_OPTIONS))
    p.add_argument("--passes", type=_names, metavar="A,B,C",
                   help=f"run only these optimizer passes, in this order; the default is all of "
                        f"them: {names} (the last two are memory-planner options)")
    p.add_argument("--skip-pass", action="append", default=[], metavar="NAME",
                   help="leave out an optimizer pass (repeatable)")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated pass names")
    return names


def optimizer_selection(args) -> tuple[bool, list[str] | None, list[str]]:
    """(optimize, passes, skip_passes) from the options of ``add_optimizer_args``."""
    if args.opt_level == 0 and (args.passes or args.skip_pass):
        raise EdgebrewError("-O0 runs no passes: drop --passes / --skip-pass, or -O0")
    from ..optimizer import select_passes
    select_passes(args.passes, args.skip_pass)        # unknown names: a clear error now
    return args.opt_level != 0, args.passes, list(args.skip_pass)

