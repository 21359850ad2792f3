"""Benchmarks (`fpagent bench NAME`). Helpers shared by all of them live here.

Each benchmark prints readable lines, and with --json one JSON object as the
very last line of stdout. Speed figures are compared with a reference run in
the same process where one exists, because these machines are noisy.
"""

from __future__ import annotations

import json
import sys
import time

from fpagent.errors import UserError


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the figures as the last line")


def emit(result: dict, as_json: bool) -> None:
    """Print the JSON line last (the readable lines were printed before)."""
    if as_json:
        sys.stdout.flush()
        print(json.dumps(result, sort_keys=True, default=float))


class Stopwatch:
    """Wall and process CPU time of a block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return False


def progress(label: str, done: int, total: int) -> None:
    """A one-line progress indicator on stderr (never stdout: JSON stays last)."""
    if not sys.stderr.isatty() and done not in (0, total):
        return
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def image_size(text: str) -> tuple[int, int]:
    """A `--size WIDTHxHEIGHT` argument ("256x288") -> (rows, cols), each side 16..2048."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r}: use WIDTHxHEIGHT, e.g. 256x288") from None
    if not (16 <= width <= 2048 and 16 <= height <= 2048):
        raise UserError(f"--size {text!r}: each side must be 16..2048 pixels")
    return height, width
