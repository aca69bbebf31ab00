"""tests/mutation/report.py: the gate `make mutate` ends with. Pure bookkeeping, tested here
because a gate that cannot fail is no gate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Loaded by its path under a name of its own: putting tests/mutation on sys.path would let its
# generic `report` shadow any other module of that name for the rest of the test session.
_SPEC = importlib.util.spec_from_file_location(
    "mutation_report", Path(__file__).resolve().parent / "mutation" / "report.py"
)
assert _SPEC is not None and _SPEC.loader is not None
report = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = report  # dataclasses look their module up while the class is built
_SPEC.loader.exec_module(report)


def _result(*mutants: tuple[str, str, int | None]) -> report.ModuleResult:
    result = report.ModuleResult("controller/core/example.py")
    for number, (function, change, exit_code) in enumerate(mutants, 1):
        result.mutants.append(report.Mutant(f"{function}__mutmut_{number}", function, change, exit_code))
    return result


def test_an_entry_matching_no_generated_mutant_is_stale():
    equivalent = {
        ("m.f", "- a || + b"): "judged once",
        ("m.g", "- c || + d"): "about a line that is gone",
    }
    results = [_result(("m.f", "- a || + b", 0), ("m.f", "- x || + y", 1))]
    assert report.stale_entries(results, equivalent) == [("m.g", "- c || + d")]
    assert report.stale_entries(results, {("m.f", "- a || + b"): "judged once"}) == []


def test_the_gate_exits_1_on_a_stale_entry_alone(tmp_path, monkeypatch, capsys):
    entries = tmp_path / "equivalent.txt"
    entries.write_text("# comment\nm.f\t- a || + b\tjudged once\nm.g\t- c || + d\tgone\n", encoding="utf-8")
    monkeypatch.setattr(report, "EQUIVALENT", entries)
    monkeypatch.setattr(report, "MODULES", ["controller/core/example.py"])
    everything_killed_but_one_equivalent = _result(("m.f", "- a || + b", 0), ("m.f", "- x || + y", 1))
    survivor = everything_killed_but_one_equivalent.mutants[0]
    everything_killed_but_one_equivalent.equivalent.append((survivor, "judged once"))  # as collect() does
    monkeypatch.setattr(report, "collect", lambda module, equivalent: everything_killed_but_one_equivalent)
    assert report.main(["--check"]) == 1
    out = capsys.readouterr()
    assert "STALE equivalent.txt: m.g\t- c || + d" in out.out
    assert "match no mutant of today's code" in out.err
    entries.write_text("m.f\t- a || + b\tjudged once\n", encoding="utf-8")  # the stale line deleted
    assert report.main(["--check"]) == 0
