# irlamp — every target creates .venv and installs into it first, so a fresh clone needs
# nothing but Python >= 3.11 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-bridge bench-slow-disk soak install uninstall venv clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "irlamp needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/irlamp simulate config/scenarios/demo.yaml

# lint-imports: the rooms' import contracts in pyproject.toml (the core stays pure, ...);
# ruff: lint over the tree; mypy: strict on the core, the default checks elsewhere.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
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

soak: $(STAMP)
	IRLAMP_KILL_POINTS=1000 $(BIN)/python -m pytest tests/test_crash_safety.py

# On a Raspberry Pi: sudo make install   (see README, "Installing on a Pi")
install:
	sh systemd/install.sh

uninstall:
	sh systemd/uninstall.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
