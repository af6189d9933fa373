"""The ``chatter`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from chatter import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each later command adds a subparser here."""
    parser = argparse.ArgumentParser(
        prog="chatter",
        description="Chatter: a real-time chat room on an OTP-style supervision tree.",
    )
    parser.add_argument("--version", action="version", version=f"chatter {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0
