"""`make bench`. The emulated I2C chips the bench runs irlamp's real readers on are a test
double and live in tests/ (tests/emulated_i2c.py), outside the installed package; importing
`bench` makes tests/ importable for them."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
