"""The core: the pure safety decision (every rule that can turn the lamp off) and its value
types. No I/O, no clock reads, no threads, no gpiozero, no sqlite3: time and readings are
passed in. Imports only itself and the pure standard library (pyproject.toml's import-linter
contracts, checked by `make test`)."""
