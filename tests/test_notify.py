"""SystemdNotifier: the sd_notify datagrams reach a socket bound by the test (SR-9)."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from controller.service.notify import SystemdNotifier


@pytest.fixture
def listener(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    if len(str(path)) >= 100:  # AF_UNIX paths are limited to ~108 bytes
        path = tmp_path.joinpath("n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_watchdog_status_stopping_reach_the_socket(listener):
    notifier = SystemdNotifier()
    assert notifier.enabled
    assert notifier.ready("idle, lamp off")
    assert receive(listener) == ["READY=1", "STATUS=idle, lamp off", f"MAINPID={os.getpid()}"]
    assert notifier.watchdog()
    assert receive(listener) == ["WATCHDOG=1"]
    assert notifier.status("running, lamp ON, 19.5 min left")
    assert receive(listener) == ["STATUS=running, lamp ON, 19.5 min left"]
    assert notifier.stopping("stopping: SIGTERM")
    assert receive(listener) == ["STOPPING=1", "STATUS=stopping: SIGTERM"]
    notifier.close()
    assert not notifier.enabled and notifier.watchdog() is False


def test_abstract_socket_names(monkeypatch):
    name = f"irlamp-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = SystemdNotifier()
        assert notifier.watchdog()
        assert receive(sock) == ["WATCHDOG=1"]
        notifier.close()
    finally:
        sock.close()


def test_explicit_address_overrides_the_environment(tmp_path, listener, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "elsewhere"))
    notifier = SystemdNotifier(listener.getsockname())
    assert notifier.watchdog() and receive(listener) == ["WATCHDOG=1"]
    notifier.close()


@pytest.mark.parametrize("value", [None, ""])
def test_unset_notify_socket_is_a_no_op(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.ready("idle") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    notifier.close()


def test_a_socket_that_is_gone_is_logged_once_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "no-such-socket"))
    notifier = SystemdNotifier()
    with caplog.at_level(logging.WARNING, logger="irlamp.notify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(monkeypatch):
    notifier = SystemdNotifier(address="")
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notifier.watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    assert notifier.watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notifier.watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert notifier.watchdog_interval_s() is None


def test_a_listener_that_stops_reading_never_blocks_the_control_loop(listener):
    # The loop pings from its own thread. If the receiver's queue is full (a busy or stuck
    # PID 1, or a test that stops reading), a blocking send would freeze the loop; it must
    # drop the message instead and let systemd's own watchdog judge the silence.
    import threading

    notifier = SystemdNotifier()
    results: list[bool] = []
    sender = threading.Thread(target=lambda: results.extend(notifier.watchdog() for _ in range(200)), daemon=True)
    sender.start()
    sender.join(timeout=10.0)
    assert not sender.is_alive(), "a send blocked on the full socket"
    assert len(results) == 200 and results[0] is True and results[-1] is False
