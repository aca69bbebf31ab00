"""SR-13, the daemon's side: one remote request, "stop the running session", through a local
datagram socket; everything else on it is ignored and counted; it can never start a session or
acknowledge a fault. (The bridge's side and the end-to-end runs: tests/test_bridge_mqtt.py.)"""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers_core import Bench, default_config
from nobody_helpers import closed_to_others, directory_for_nobody, why_nobody_was_denied

from controller.service.remote_stop import (
    MAX_DATAGRAMS_PER_STEP,
    STOP_REQUEST,
    RemoteStopChannel,
    allowed_sender_uids,
    open_remote_stop,
    send_stop_request,
    stop_socket_path,
)

CFG = default_config()


def running_bench() -> Bench:
    bench = Bench(CFG)
    bench.start_session()
    assert bench.lamp_on()
    return bench


def test_remote_stop_ends_a_running_session_at_once_like_a_stop_press():
    bench = running_bench()
    bench.run(5.0)
    bench.remote_stop = True
    decision = bench.step(bench.now + 0.01)
    bench.remote_stop = False
    assert decision.lamp_on is False
    assert [e["reason"] for e in bench.fields_of("session_ended")] == ["stopped_remotely"]
    bench.run(3.0)
    assert bench.ctl.state == "idle" and not bench.lamp_on()
    assert len(bench.fields_of("session_started")) == 1


def test_remote_stop_without_a_session_changes_nothing():
    bench = Bench(CFG)
    bench.settle()
    before = (bench.ctl.state, list(bench.ctl.latched), len(bench.events))
    bench.remote_stop = True
    bench.run(2.0)
    assert (bench.ctl.state, list(bench.ctl.latched), len(bench.events)) == before
    assert not bench.lamp_on()


def test_remote_stop_neither_starts_nor_acknowledges():
    """Held on for a long time, with a fault latched, it never acknowledges and never starts."""
    bench = running_bench()
    bench.run(1.0, distance_error="io_error")
    assert bench.ctl.latched
    bench.remote_stop = True
    bench.run(10.0)
    assert bench.ctl.latched and bench.ctl.state == "fault"
    assert "fault_acknowledged" not in bench.names()
    assert len(bench.fields_of("session_started")) == 1 and not bench.lamp_on()


@pytest.fixture
def channel(tmp_path):
    opened = RemoteStopChannel(stop_socket_path(tmp_path), frozenset({os.getuid()}))
    yield opened
    opened.close()


def test_socket_is_0660_and_take_never_blocks(channel):
    mode = os.stat(channel.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert channel.take() is False  # nothing waiting: returns at once


def test_only_the_exact_request_counts_everything_else_is_ignored_and_counted(channel, caplog):
    rng = random.Random(14)
    junk = [
        b"",
        STOP_REQUEST + b"\n",
        STOP_REQUEST.upper(),
        b"start",
        b"ack",
        STOP_REQUEST[:-1],
        STOP_REQUEST * 2,
        bytes(600),
    ] + [rng.randbytes(rng.randint(1, 200)) for _ in range(30)]
    with caplog.at_level(logging.WARNING, logger="irlamp"):
        for start in range(0, len(junk), 10):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
                for payload in junk[start : start + 10]:
                    sender.sendto(payload, str(channel.path))
            assert channel.take() is False
    assert channel.rejected == len(junk) and channel.accepted == 0
    logged = [r for r in caplog.records if "remote stop channel" in r.getMessage()]
    assert len(logged) == 1, "the log is rate-limited: one line per minute"
    send_stop_request(channel.path)
    assert channel.take() is True
    assert channel.take() is False, "one request stops once"


def test_a_flood_is_drained_in_bounded_steps(channel):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        sent = 0
        for _ in range(3 * MAX_DATAGRAMS_PER_STEP):
            try:
                sender.sendto(b"junk", str(channel.path))
                sent += 1
            except BlockingIOError:
                break
    channel.take()
    assert channel.rejected == min(sent, MAX_DATAGRAMS_PER_STEP)


def test_no_runtime_dir_means_no_channel_not_an_error(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="irlamp"):
        assert open_remote_stop(tmp_path / "missing") is None
    assert "remote stop unavailable" in caplog.text
    with pytest.raises(OSError):
        send_stop_request(stop_socket_path(tmp_path / "missing"))


def test_a_stop_request_from_another_user_is_ignored_and_counted(tmp_path):
    """A person in the socket's group is not the bridge: the kernel names the sender (SO_PASSCRED)
    and only the bridge's user, the daemon's own user and root are obeyed."""
    someone_else = frozenset({os.getuid() + 4242})
    channel = RemoteStopChannel(stop_socket_path(tmp_path), someone_else)
    try:
        send_stop_request(channel.path)
        assert channel.take() is False and channel.rejected == 1
    finally:
        channel.close()
    assert {0, os.getuid()} <= allowed_sender_uids()


SENDER = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
    "s.sendto(sys.argv[2].encode(), sys.argv[1]); print('sent')"
)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_member_of_the_socket_group_who_is_not_the_bridge_is_not_obeyed():
    """For real: 'nobody' with the socket's group may write the 0660 socket, but its request is
    not from the bridge's user, so the daemon ignores it; without the group it cannot even send."""
    with directory_for_nobody("irlamp-stop-") as directory:  # pytest's tmp is root-only
        channel = open_remote_stop(directory)
        try:

            def send_as_nobody(*group_args: str) -> subprocess.CompletedProcess:
                return subprocess.run(
                    [
                        "setpriv",
                        "--reuid",
                        "nobody",
                        *group_args,
                        sys.executable,
                        "-c",
                        SENDER,
                        str(channel.path),
                        STOP_REQUEST.decode(),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    cwd="/",
                )

            in_group = send_as_nobody("--regid", str(os.stat(channel.path).st_gid), "--clear-groups")
            assert in_group.returncode == 0, in_group.stderr + why_nobody_was_denied(directory)
            assert channel.take() is False and channel.rejected == 1
            # the directory is still open to 'nobody': only the socket's group keeps the outsider out
            assert closed_to_others(directory) is None, closed_to_others(directory)
            outsider = send_as_nobody("--regid", "nogroup", "--clear-groups")
            assert outsider.returncode != 0 and "Permission denied" in outsider.stderr
            send_stop_request(channel.path)  # root (here: the daemon's user) is obeyed
            assert channel.take() is True
        finally:
            channel.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([None, "io_error", "nan"])), min_size=5, max_size=40))
def test_remote_stops_alone_never_start_or_acknowledge(steps):
    """Whatever arrives on the remote channel, with sensor trouble or without: without the
    button no session starts and no latched fault is acknowledged."""
    bench = Bench(CFG)
    bench.settle()
    for remote, trouble in steps:
        bench.remote_stop = remote
        bench.run(0.5, distance_error=trouble)
    assert "session_started" not in bench.names() and "fault_acknowledged" not in bench.names()
    assert not bench.lamp_on()


def test_remote_stop_mid_session_then_the_button_still_works():
    bench = running_bench()
    bench.remote_stop = True
    bench.step(bench.now + 0.01)
    bench.remote_stop = False
    bench.run(1.0)
    bench.press(0.2)  # a new session needs the button, and it still starts one
    assert [f["reason"] for f in bench.fields_of("session_ended")] == ["stopped_remotely"]
    assert bench.ctl.state == "running" and len(bench.fields_of("session_started")) == 2


class CountingChannel:
    """A stop channel that says 'stop' from `stop_from_call` on and counts the looks."""

    def __init__(self, stop_from_call: int | None = None):
        self.looks = 0
        self.stop_from_call = stop_from_call

    def take(self) -> bool:
        self.looks += 1
        return self.stop_from_call is not None and self.looks >= self.stop_from_call


def test_the_loop_looks_at_the_stop_channel_a_few_times_a_second_not_at_every_step(rig):
    """Each look is a system call (a non-blocking receive): issue 15 spends it REMOTE_STOP_LOOK_S
    apart, not at every 20 Hz step; the bridge's own round trip is longer than that."""
    from controller.service.daemon import REMOTE_STOP_LOOK_S

    rig.start_session()
    rig.daemon.remote_stop = channel = CountingChannel()
    rig.run(2.0)
    assert 2.0 / REMOTE_STOP_LOOK_S - 1 <= channel.looks <= 2.0 / REMOTE_STOP_LOOK_S + 1
    assert rig.relay_pin_on()


def test_a_remote_stop_ends_the_session_within_one_look_of_arriving(rig):
    from controller.service.daemon import REMOTE_STOP_LOOK_S

    rig.start_session()
    rig.daemon.remote_stop = CountingChannel(stop_from_call=3)
    rig.run(2 * REMOTE_STOP_LOOK_S + 0.1)  # the first look is at once, the third 2 looks (+ a step) later
    assert [f["reason"] for name, f in rig.events if name == "session_ended"] == ["stopped_remotely"]
    assert not rig.relay_pin_on()
