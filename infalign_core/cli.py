"""Command line: ``python -m infalign_core <command>``.

Each command is a ``_add_<command>`` function that registers its parser and sets
``func``; the work itself lives in the library modules, imported lazily so that
``theory`` never pays for importing torch. Errors a user can fix are printed as one
line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from infalign_core.errors import InfAlignError


def _positive_float(text: str) -> float:
    """Parse a finite float > 0 for argparse."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _finite_float(text: str) -> float:
    """Parse a finite float for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _positive_int(text: str) -> int:
    """Parse an int >= 1 for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        """Print ``error: message`` (no usage block) and exit 2."""
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _print_json(obj) -> None:
    """Print one JSON object on one line (the contract for ``--json``)."""
    print(json.dumps(obj, allow_nan=False))


# --- theory -----------------------------------------------------------------


def _add_theory(sub) -> None:
    p = sub.add_parser(
        "theory",
        help="calibrated-space KL and win rates of a transform (no language model needed)",
        description="Exact KL and standard / best-of-N / worst-of-N win rates of the "
        "KL-regularised optimum for a transformed calibrated reward.",
    )
    p.add_argument("--transform", required=True, choices=["identity", "log", "exp", "optimal"])
    p.add_argument("--t", type=_finite_float, default=None, help="exponential transform's t (default: the best t for N at this KL)")
    p.add_argument("--mode", choices=["best", "worst"], default="best", help="best-of-N or worst-of-N (exp and optimal)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--beta", type=_positive_float, help="KL coefficient beta > 0")
    g.add_argument("--kl", type=_positive_float, help="KL budget in nats > 0; beta is solved for")
    p.add_argument("--n", type=_positive_int, required=True, help="N of best-of-N / worst-of-N")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_theory)


def _run_theory(args) -> int:
    from infalign_core import theory

    point = theory.evaluate_cli(
        transform=args.transform, t=args.t, mode=args.mode, beta=args.beta, kl=args.kl, n=args.n
    )
    if args.json:
        _print_json(point)
    else:
        width = max(len(k) for k in point)
        for key, value in point.items():
            print(f"{key:<{width}}  {value:.6g}")
    return 0


# --- registration -----------------------------------------------------------
# Commands added by other modules register here, one line each.
_COMMANDS = [_add_theory]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command registered."""
    parser = _Parser(
        prog="python -m infalign_core",
        description="InfAlign Studio: inference-aware alignment from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InfAlignError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
