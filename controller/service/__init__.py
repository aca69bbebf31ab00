"""The service around the core: the daemon's loop and wiring, the journal and its writer, the
status file, systemd notification, the config, the failsafe and the selftest. Imports the core
and the drivers; never the simulator, the bridge or the CLI."""
