"""Numbers in irlamp's YAML files (the config and scenarios), read the way a person means them.

PyYAML follows YAML 1.1, whose implicit resolvers (yaml/resolver.py) read a plain `017` as
octal 15, `0x131` and `0b101` as hexadecimal and binary, `5:05` as base-60 305 and `1_000` as
1000, while `1e3` (no decimal point, no sign in the exponent) is not a number but the text
"1e3". irlamp's rule instead, for every value that must be a number:

  A number is written in plain decimal: an optional sign, digits, an optional decimal point
  with more digits, an optional exponent: 17, -3, 0.5, .5, 40., 1e3, 2.5E-1.
  A whole number (a pin, a count, milliseconds) takes no decimal point and no exponent
  (that is checked by the caller, which knows which numbers must be whole).

Anything else that starts like a number is refused by name (hexadecimal, binary, octal or
leading zero, base 60, digit separators, trailing words), and so is a number far too large
(a whole number of more than 15 digits, a decimal beyond the float range). Quoted scalars
are text, and `.inf` / `.nan` are left to YAML: every irlamp number has finite bounds, so
they are refused there.
"""

from __future__ import annotations

import math
import re

import yaml

WHOLE = re.compile(r"[-+]?[0-9]+")
DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
NUMBER_LIKE = re.compile(r"[-+]?\.?[0-9]")
MAX_WHOLE_DIGITS = 15
RULE = "write numbers in plain decimal, like 17, 0.5 or 1e3"

_RESOLVER = yaml.SafeLoader("")  # only for the tag a plain scalar gets when no tag is written


class NumberFormError(ValueError):
    """A scalar that looks like a number but is not written in plain decimal; str() says why."""


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}…"


def _form(body: str) -> str:
    """What the unsigned text `body` is, in words, for the refusal."""
    prefix = body[:2].lower()
    if prefix == "0x":
        return "is a hexadecimal number"
    if prefix == "0b":
        return "is a binary number"
    if prefix == "0o":
        return "is an octal number"
    if re.fullmatch(r"0[0-9_]+", body):
        return "has a leading zero (YAML 1.1 reads that as octal)"
    if re.fullmatch(r"[0-9_]+(?::[0-9_]*)+(?:\.[0-9_]*)?", body):
        return "is a base-60 number in YAML 1.1 (5:05 would mean 305)"
    if "_" in body and re.fullmatch(r"[0-9_.eE+-]+", body):
        return "has '_' between digits"
    return "is not a plain decimal number"


def plain_number(node: yaml.ScalarNode) -> int | float | None:
    """The number a plain (unquoted, untagged) scalar spells under the rule above: an int for
    whole-number text, a float otherwise. None when the scalar does not look like a number
    (quoted, explicitly tagged, true, null, .inf, words): YAML's own reading applies then.
    Raises NumberFormError for number-like text in any other form."""
    text = node.value
    implicit_tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    if node.style is not None or node.tag != implicit_tag or not NUMBER_LIKE.match(text):
        return None
    body = text.lstrip("+-")
    if WHOLE.fullmatch(text) and not (body.startswith("0") and len(body) > 1):
        if len(body) > MAX_WHOLE_DIGITS:
            raise NumberFormError(f"{_shown(text)} is far too large ({len(body)} digits)")
        return int(text)
    if DECIMAL.fullmatch(text) and not WHOLE.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):  # e.g. 1e400: beyond the float range
            raise NumberFormError(f"{_shown(text)} is far too large")
        return value
    raise NumberFormError(f"{_shown(text)} {_form(body)}; {RULE}")
