"""Simulation (a product feature): `irlamp simulate` runs a scenario file through the real
service and core on simulated sensors, a mock GPIO and a simulated clock."""
