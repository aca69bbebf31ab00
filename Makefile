# irlamp — every target creates .venv and installs into it first, so a fresh clone needs
# nothing but Python >= 3.11 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-bridge bench-slow-disk soak mutate install uninstall venv clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "irlamp needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test,plot]'
	@touch $(STAMP)

venv: $(STAMP)

# The demo's journal goes to demo/ and each of its sessions is drawn there as a picture
# (`irlamp plot`, the irlamp[plot] extra the stamp installs).
demo: $(STAMP)
	rm -rf demo && mkdir -p demo
	$(BIN)/irlamp simulate --state-dir demo/state config/scenarios/demo.yaml
	$(BIN)/irlamp plot 1 --state-dir demo/state -o demo/session-1.png
	$(BIN)/irlamp plot 2 --state-dir demo/state -o demo/session-2.png

# lint-imports: the rooms' import contracts in pyproject.toml (the core stays pure, ...);
# ruff: lint and format check over the tree; mypy: strict on the core, the default checks elsewhere.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python -m bench.bridge

# Phase 4 of `make bench` alone: the MQTT bridge's CPU, RSS and change -> publish latency.
bench-bridge: $(STAMP)
	$(BIN)/python -m bench.bridge

# The slow-disk phase of `make bench` alone: the loop with 1 s journal commits and a stuck disk.
bench-slow-disk: $(STAMP)
	$(BIN)/python -m bench.slow_disk

# The real daemon SIGKILLed 1000 times in every state (docs/soak.md), and the journal-writer
# stand-in killed 1000 times mid-transaction.
soak: $(STAMP)
	IRLAMP_SOAK_KILLS=1000 IRLAMP_KILL_POINTS=1000 $(BIN)/python -m pytest -s tests/test_daemon_soak.py tests/test_crash_safety.py

MUTATION_STAMP := $(VENV)/.mutation-stamp

$(MUTATION_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	@touch $(MUTATION_STAMP)

# Mutation testing of the safety core (docs/mutation.md). Not part of `make test`: a full run
# takes long (see docs/mutation.md), niced and on 2 workers so the machine stays usable.
# mutmut keeps its results in mutants/ and re-tests only functions changed since; delete
# mutants/ for a full run. Writes docs/mutation.md and the table in docs/safety.md, and fails
# when a module scores below 95 % or a hand-written mutant (tests/mutation/named.py) survives.
mutate: $(MUTATION_STAMP)
	@start=$$(date +%s); \
	nice -n 10 $(BIN)/mutmut run --max-children 2 > mutants.log 2>&1 || { tail -20 mutants.log; exit 1; }; \
	elapsed=$$(( $$(date +%s) - start )); \
	$(BIN)/python tests/mutation/report.py --elapsed "$$((elapsed / 60)) min $$((elapsed % 60)) s for mutmut ($$(date -u +%Y-%m-%d))"; \
	status=$$?; nice -n 10 $(BIN)/python tests/mutation/named.py && exit $$status

# On a Raspberry Pi: sudo make install   (see README, "Installing on a Pi")
install:
	sh systemd/install.sh

uninstall:
	sh systemd/uninstall.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info mutants mutants.log
