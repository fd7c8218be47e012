"""Shared by both programs' argument checks: strict numbers, exit status 1."""

from __future__ import annotations

import argparse
import sys

from .terminal_io import print_error


def parse_decimal(text: str) -> int | None:
    """A plain decimal integer, or None: int() alone would accept "+5", " 5",
    "5_000" and non-ASCII digits."""
    if text.isascii() and text.isdigit():
        return int(text)
    return None


class ExitOneParser(argparse.ArgumentParser):
    """argparse, but bad arguments exit 1 as SPEC §1 asks (argparse uses 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print_error(self.prog, message)
        sys.exit(1)
