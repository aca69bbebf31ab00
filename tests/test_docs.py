"""The caregiver documentation must match what the code shows and records.

The README's blink-code tables are what a caregiver reads at 3 a.m.; if a code or a
count drifts from controller/core/faults.py or controller/core/indicators.py, this fails.
docs/safety.md must give every SR a row whose named tests exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from controller.core.faults import FAULTS
from controller.core.indicators import REFUSAL_BLINKS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("code", sorted(FAULTS))
def test_every_fault_code_is_in_the_readme_with_its_blink_counts(code):
    rows = _table_rows(README)
    assert code in rows, f"README fault table lacks {code}"
    info = FAULTS[code]
    assert rows[code][:2] == [str(info.red), str(info.amber)]


def test_readme_fault_table_has_no_unknown_codes():
    fault_like = {c for c in _table_rows(README) if "_" in c and c not in REFUSAL_BLINKS}
    assert fault_like <= set(FAULTS)


@pytest.mark.parametrize("reason,count", sorted(REFUSAL_BLINKS.items()))
def test_every_refusal_reason_is_in_the_readme_with_its_blinks(reason, count):
    pattern = rf"^\|\s*{count}\s*\|\s*`{reason}`\s*\|"
    assert re.search(pattern, README, flags=re.M), f"README refusal table lacks {count} = {reason}"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_safety_document_names_existing_tests_for_every_requirement():
    text = (ROOT / "docs" / "safety.md").read_text(encoding="utf-8")
    for number in range(1, 16):
        row = next((line for line in text.splitlines() if line.startswith(f"| SR-{number} ")), None)
        assert row is not None, f"docs/safety.md has no row for SR-{number}"
        refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row)
        assert refs, f"SR-{number} names no tests"
        for file_name, test_name in refs:
            path = ROOT / file_name
            assert path.exists(), f"SR-{number}: {file_name} does not exist"
            assert test_name in _test_names(path), f"SR-{number}: {file_name}::{test_name} does not exist"


def test_no_fault_advice_says_a_restart_clears_it():
    """A restart re-latches every unacknowledged fault from the journal; only a long press of a
    working button clears one. Advice that says 'restart' sends a caregiver round in circles."""
    readme_rows = _table_rows(README)
    for code, info in FAULTS.items():
        for where, advice in (("controller/core/faults.py", info.advice), ("README", readme_rows[code][-1])):
            assert "restart" not in advice.lower(), f"{where}: advice for {code} says restart: {advice!r}"


def test_button_stuck_advice_says_how_a_stuck_button_is_cleared():
    readme_advice = _table_rows(README)["button_stuck"][-1]
    for advice in (FAULTS["button_stuck"].advice, readme_advice):
        assert "replace" in advice and "hold" in advice and "3 s" in advice, advice
