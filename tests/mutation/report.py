"""Summarise a mutmut run of the safety core: docs/mutation.md and the table in docs/safety.md.

Reads mutmut's results (mutants/<file>.meta) and the mutated sources (mutants/<file>), and
tests/mutation/equivalent.txt: the surviving mutants judged equivalent, each with one line of why.
An entry names the mutated function and the change itself (not mutmut's running number, which
shifts whenever the function is edited). When the line is edited, its mutant shows up as a
survivor again, and the old entry, which now matches no mutant, is reported as stale.

Exit status 1 when a module scores below TARGET, a result is missing (not checked) or an entry
of equivalent.txt matches no mutant of today's code (stale), so `make mutate` is a gate.
Score = killed / (total - equivalent).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MUTANTS = REPO / "mutants"
EQUIVALENT = REPO / "tests" / "mutation" / "equivalent.txt"
MODULES = [
    "controller/core/safety.py",
    "controller/core/sensor_health.py",
    "controller/core/button.py",
    "controller/core/limits.py",
    "drivers/guard.py",
]
TARGET = 0.95
KILLED_CODES = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}  # a test failed, timed out or crashed
TABLE_START, TABLE_END = "<!-- mutation-table:start -->", "<!-- mutation-table:end -->"


@dataclass
class Mutant:
    key: str  # mutmut's name, e.g. controller.button.xǁButtonTrackerǁupdate__mutmut_2
    function: str  # the key without the running number
    change: str  # "- old line || + new line"
    exit_code: int | None

    @property
    def killed(self) -> bool:
        return self.exit_code in KILLED_CODES


@dataclass
class ModuleResult:
    path: str
    mutants: list[Mutant] = field(default_factory=list)
    equivalent: list[tuple[Mutant, str]] = field(default_factory=list)
    surviving: list[Mutant] = field(default_factory=list)
    not_checked: list[Mutant] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(m.killed for m in self.mutants)

    @property
    def score(self) -> float:
        relevant = len(self.mutants) - len(self.equivalent)
        return 1.0 if relevant == 0 else self.killed / relevant


def function_changes(mutated_source: str) -> dict[str, str]:
    """'<function>__mutmut_<n>' -> the lines it changes, from mutmut's mutated file."""
    tree = ast.parse(mutated_source)
    bodies: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and "__mutmut_" in node.name:
            bodies[node.name] = (ast.get_source_segment(mutated_source, node) or "").splitlines()[1:]
    changes = {}
    for name, body in bodies.items():
        base, _, number = name.rpartition("__mutmut_")
        if number == "orig" or base + "__mutmut_orig" not in bodies:
            continue
        diff = difflib.unified_diff(bodies[base + "__mutmut_orig"], body, lineterm="", n=0)
        changes[name] = " || ".join(
            f"{line[0]} {line[1:].strip()}" for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")
        )
    return changes


def load_equivalent(path: Path | None = None) -> dict[tuple[str, str], str]:
    """(function, change) -> reason. Lines: function <TAB> change <TAB> reason; '#' comments.
    `path`: EQUIVALENT unless given."""
    path = EQUIVALENT if path is None else path
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise SystemExit(f"{path}:{number}: expected 'function<TAB>change<TAB>reason'")
        table[(parts[0].strip(), parts[1].strip())] = parts[2].strip()
    return table


def collect(module: str, equivalent: dict[tuple[str, str], str]) -> ModuleResult:
    result = ModuleResult(module)
    meta = json.loads((MUTANTS / (module + ".meta")).read_text(encoding="utf-8"))["exit_code_by_key"]
    changes = function_changes((MUTANTS / module).read_text(encoding="utf-8"))
    for key, exit_code in sorted(meta.items(), key=lambda kv: natural_key(kv[0])):
        local = key.rsplit(".", 1)[1]
        mutant = Mutant(key, key.rpartition("__mutmut_")[0], changes.get(local, "?"), exit_code)
        result.mutants.append(mutant)
        if mutant.killed:
            continue
        if exit_code is None:
            result.not_checked.append(mutant)
        reason = equivalent.get((mutant.function, mutant.change))
        if reason is not None:
            result.equivalent.append((mutant, reason))
        else:
            result.surviving.append(mutant)
    return result


def stale_entries(results: list[ModuleResult], equivalent: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Entries of equivalent.txt that match no mutant mutmut generates from today's code: a
    judgement about a line that no longer exists (the function was edited since)."""
    generated = {(m.function, m.change) for r in results for m in r.mutants}
    return [entry for entry in equivalent if entry not in generated]


def natural_key(key: str) -> tuple[str, int]:
    base, _, number = key.rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else -1


def table(results: list[ModuleResult]) -> str:
    lines = [
        "| module | mutants | killed | equivalent | surviving, not equivalent | score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| `{r.path}` | {len(r.mutants)} | {r.killed} | {len(r.equivalent)} | {len(r.surviving)} | {r.score:.1%} |"
        )
    return "\n".join(lines)


def short(mutant: Mutant) -> str:
    return mutant.key.split(".", 2)[-1].replace("xǁ", "").replace("ǁ", ".").replace("x_", "", 1)


def markdown(results: list[ModuleResult], elapsed: str) -> str:
    out = [
        "# Mutation testing of the safety core",
        "",
        "Generated by `make mutate` (tests/mutation/report.py); do not edit by hand. mutmut 3 changes one",
        "operator, literal or argument at a time inside the functions of the five modules below and runs",
        "the fast tests that call that function (the list is `[tool.mutmut]` in pyproject.toml); a mutant",
        "is *killed* when a test fails (or times out). Score = killed / (mutants - equivalent); the gate",
        f"is {TARGET:.0%} per module. Equivalent mutants cannot change any behaviour a test could see;",
        "each is listed with the reason (tests/mutation/equivalent.txt). tests/mutation/named.py adds hand-written",
        "mutants mutmut does not generate (constants, min/max swaps, deleted statements) that an earlier",
        "pass found alive; every one must be killed.",
        "",
        f"Last full run: {elapsed}.",
        "",
        table(results),
        "",
    ]
    for r in results:
        if r.surviving:
            out += [f"## Surviving, not judged equivalent: `{r.path}`", ""]
            out += [
                f"- `{short(m)}`: `{m.change}`" + (" (not checked)" if m.exit_code is None else "") for m in r.surviving
            ]
            out.append("")
    out += ["## Equivalent mutants", ""]
    for r in results:
        if not r.equivalent:
            continue
        out += [f"### `{r.path}`", ""]
        out += [f"- `{short(m)}`: `{m.change}` -- {reason}" for m, reason in r.equivalent]
        out.append("")
    return "\n".join(out)


def update_safety_md(path: Path, results: list[ModuleResult]) -> None:
    text = path.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{path}: markers {TABLE_START} / {TABLE_END} not found")
    block = f"{TABLE_START}\n{table(results)}\n{TABLE_END}"
    text = re.sub(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), lambda _m: block, text, flags=re.S)
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elapsed", default="(not measured)", help="how long the run took, for the report")
    parser.add_argument("--check", action="store_true", help="only print and gate; write no files")
    args = parser.parse_args(argv)
    equivalent = load_equivalent()
    results = [collect(m, equivalent) for m in MODULES]
    print(table(results))
    for r in results:
        for m in r.surviving:
            print(f"SURVIVED {m.key}: {m.change}" + (" (not checked)" if m.exit_code is None else ""))
    if not args.check:
        (REPO / "docs" / "mutation.md").write_text(markdown(results, args.elapsed) + "\n", encoding="utf-8")
        update_safety_md(REPO / "docs" / "safety.md", results)
    stale = stale_entries(results, equivalent)
    for function, change in stale:
        print(f"STALE {EQUIVALENT.name}: {function}\t{change}")
    failing = [r.path for r in results if r.score < TARGET or r.not_checked]
    if failing:
        print(f"below {TARGET:.0%} or not fully checked: {', '.join(failing)}", file=sys.stderr)
    if stale:
        print(f"{len(stale)} entries of {EQUIVALENT} match no mutant of today's code: delete them", file=sys.stderr)
    return 1 if failing or stale else 0


if __name__ == "__main__":
    sys.exit(main())
