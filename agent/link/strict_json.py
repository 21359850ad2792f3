"""A strict, bounded JSON reader for bytes that come from outside.

Python's `json.loads` accepts what a signed-message reader must not: duplicate
keys (the last one wins, so a first-key-wins reader elsewhere sees another
message than the one verified), NaN and Infinity, integers of any length
(which cost quadratic time, then raise ValueError), lone surrogates (which
later fail to encode) and nesting deep enough to raise RecursionError. This
reader refuses all of them with one error type, in bounded time.

Pure: bytes in, a value or StrictJSONError out.
"""

from __future__ import annotations

import json
import math
import re

from fpagent.errors import FpagentError

MAX_DEPTH = 16  # central's messages nest 4 deep (body.args.entries[i])
MAX_INT_DIGITS = 19  # fits a signed 64-bit integer
MAX_FLOAT_CHARS = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictJSONError(FpagentError, ValueError):
    """Not JSON this project reads: the message says why (safe to log: no content)."""


def _pairs(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise StrictJSONError("duplicate key in an object")
    return obj


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJSONError(f"integer of {len(text)} digits (more than {MAX_INT_DIGITS})")
    return int(text)


def _number(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise StrictJSONError(f"number of {len(text)} characters (more than {MAX_FLOAT_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("number out of range")
    return value


def _constant(text: str):
    raise StrictJSONError(f"{text} is not JSON")


def _check_tree(value, max_depth: int) -> None:
    """Depth and string checks without recursion (the tree may be deep)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise StrictJSONError("lone surrogate in a string")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise StrictJSONError(f"nested more than {max_depth} deep")
        if isinstance(node, dict):
            for k, v in node.items():
                if _SURROGATE.search(k):
                    raise StrictJSONError("lone surrogate in a key")
                stack.append((v, depth + 1))
        else:
            stack.extend((v, depth + 1) for v in node)


def loads(data: bytes, *, max_depth: int = MAX_DEPTH):
    """Parse UTF-8 JSON strictly; raise StrictJSONError on anything else."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise StrictJSONError("not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_integer,
                           parse_float=_number, parse_constant=_constant)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"nested more than {max_depth} deep") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        # json.JSONDecodeError is a ValueError; its message holds a position, no content
        raise StrictJSONError(f"not JSON: {str(exc)[:120]}") from None
    _check_tree(value, max_depth)
    return value
