"""`irlamp bridge`: the MQTT bridge that shows the lamp to Home Assistant and a fleet view (SR-13).

It runs as its own process and user, outside the safety daemon. It reads what the daemon
already writes (the status file and the journal, read-only) and publishes it; its only way back
is the daemon's remote STOP socket. Nothing in the daemon imports this package.
"""
