"""Start-up time, CPU and peak memory of a whole program, measured from outside its process.

The program is started with `$NOTIFY_SOCKET` pointing at our own datagram socket, as systemd
would start `irlamp run` (Type=notify): start-up is the time from just before the process is
spawned to the arrival of `READY=1`. Its stdin is a pipe: `space` presses the (mock) button,
`q` quits, as for `irlamp run --simulate`. CPU is utime + stime from /proc/<pid>/stat (all
threads) per wall second, the median of consecutive windows (`summarize_windows`); memory is
VmHWM (peak resident set) from /proc/<pid>/status.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

Command = Callable[[Path], list[str]]  # argv for a run whose scratch directory is the argument

CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 15.0
# CPU windows: at CLK_TCK 100 a 10 s window resolves 0.1 % of a core; a 60 s measurement
# gives six of them to take the median of.
CPU_WINDOW_S = 10.0
# On a Pi the status file is written to /run/irlamp, a tmpfs (systemd's RuntimeDirectory=):
# the measured program gets a runtime directory on a tmpfs too when the machine has one, so
# its once-a-second status write is not measured as an fsync on the build machine's disk.
TMPFS = Path("/dev/shm")
TMPFS_MARKER = "tmpfs-runtime-dir"  # in the scratch directory: the tmpfs directory to remove
TMPFS_PREFIX = "irlamp-bench-run-"  # then the pid of the bench process that made it, then "-"


def runtime_dir(workdir: Path) -> Path:
    """A runtime directory for a run whose scratch directory is `workdir`: on a tmpfs if the
    machine has a writable one (removed with the run; one left by a killed bench is removed
    by the next: `sweep_runtime_dirs`), else `workdir/run`."""
    if runtime_on_tmpfs():
        path = Path(tempfile.mkdtemp(prefix=f"{TMPFS_PREFIX}{os.getpid()}-", dir=TMPFS))
        (workdir / TMPFS_MARKER).write_text(str(path))
        return path
    path = workdir / "run"
    path.mkdir(exist_ok=True)
    return path


def runtime_on_tmpfs() -> bool:
    """Whether `runtime_dir` puts the status file on a tmpfs on this machine."""
    return TMPFS.is_dir() and os.access(TMPFS, os.W_OK | os.X_OK)


def sweep_runtime_dirs() -> list[Path]:
    """Remove the tmpfs runtime directories of bench processes that no longer run (a bench
    killed with SIGKILL cannot remove its own). Returns what was removed."""
    removed = []
    if not TMPFS.is_dir():
        return removed
    for path in TMPFS.glob(f"{TMPFS_PREFIX}*"):
        pid_text = path.name[len(TMPFS_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _running(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class ProcessError(Exception):
    """The measured program did not behave as the measurement needs (one line, with its stderr)."""


def summarize_windows(marks: list[tuple[float, float, int]]) -> dict:
    """CPU figures from consecutive marks (wall s, process CPU s, voluntary switches).

    `cpu_percent`, the headline, is the median window: on a shared (virtual) machine a window
    now and then measures the host's interference as well - caches and TLBs refilled after
    another guest ran - and the median keeps one such burst from deciding the figure.
    `mean_percent` is the whole span's CPU per wall second, for comparison; every window's
    figure is kept."""
    if len(marks) < 2:
        raise ValueError("CPU figures need at least two marks (one window)")
    windows = [
        100.0 * (cpu1 - cpu0) / (wall1 - wall0) for (wall0, cpu0, _), (wall1, cpu1, _) in itertools.pairwise(marks)
    ]
    (wall0, cpu0, woken0), (wall1, cpu1, woken1) = marks[0], marks[-1]
    return {
        "cpu_percent": round(statistics.median(windows), 3),
        "mean_percent": round(100.0 * (cpu1 - cpu0) / (wall1 - wall0), 3),
        "windows_percent": [round(w, 3) for w in windows],
        "cpu_s": round(cpu1 - cpu0, 3),
        "wall_s": round(wall1 - wall0, 3),
        "wakeups_per_s": round((woken1 - woken0) / (wall1 - wall0), 1),
    }


def cpu_over(pid: int, seconds: float, window_s: float = CPU_WINDOW_S) -> dict:
    """Process `pid`'s CPU per wall second over `seconds`, as % of one core, taken in
    consecutive windows of about `window_s` (see `summarize_windows`). Every bench phase that
    reports a CPU figure (irlamp's, the baselines', the bridge's) takes it this way."""
    count = max(1, round(seconds / window_s))
    marks = [(time.perf_counter(), cpu_seconds(pid), voluntary_switches(pid))]
    for _ in range(count):
        time.sleep(seconds / count)
        marks.append((time.perf_counter(), cpu_seconds(pid), voluntary_switches(pid)))
    return summarize_windows(marks)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def voluntary_switches(pid: int) -> int:
    """Voluntary context switches of all the process's threads: each is a thread going to
    sleep (or waiting for a lock), so their rate is the process's wake-ups per second."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:  # a thread that ended meanwhile
            continue
    return total


def status_field_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise ProcessError(f"/proc/{pid}/status has no {name}")


class Notified:
    """Collects sd_notify datagrams (arrival time, text) on a socket in `directory`."""

    def __init__(self, directory: Path):
        self.path = str(directory / "notify.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._arrived = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                self.messages.append((time.perf_counter(), data.decode(errors="replace")))
                self._arrived.notify_all()

    def wait_for(self, needle: str, timeout_s: float, after: float = 0.0) -> float | None:
        """Arrival time of the first message at/after `after` containing `needle`."""
        deadline = time.perf_counter() + timeout_s
        with self._arrived:
            while True:
                for t_s, text in self.messages:
                    if t_s >= after and needle in text:
                        return t_s
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self._arrived.wait(min(left, 0.2))

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=1.0)
        self._sock.close()


class Program:
    """One run of a program under measurement (context manager: always stopped on exit)."""

    def __init__(self, command: Command, workdir: Path, cwd: Path, env: dict[str, str] | None = None):
        self.argv, self.workdir, self.cwd = command(workdir), workdir, cwd
        self.env = env or {}
        self.notified = Notified(workdir)
        self.stderr_path = workdir / "stderr.txt"
        self.proc: subprocess.Popen | None = None
        self.started_s = 0.0

    def __enter__(self) -> Program:
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": self.notified.path, "PYTHONUNBUFFERED": "1"}
        with open(self.stderr_path, "wb") as err:
            self.started_s = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=self.cwd
            )
        return self

    def wait_ready(self) -> float:
        """Seconds from spawn to READY=1."""
        t_ready = self.notified.wait_for("READY=1", READY_TIMEOUT_S)
        if t_ready is None:
            raise ProcessError(f"{self.argv[1:4]} sent no READY=1 within {READY_TIMEOUT_S:.0f} s: {self.stderr_tail()}")
        return t_ready - self.started_s

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def press_until(self, status_marker: str, timeout_s: float = 5.0) -> None:
        """Press the (mock) button and wait for a STATUS= text containing `status_marker`
        (e.g. 'lamp ON': the session is running)."""
        t_press = time.perf_counter()
        self.send("space\n")
        if self.notified.wait_for(status_marker, timeout_s, after=t_press) is None:
            raise ProcessError(
                f"{self.argv[1:4]}: no '{status_marker}' status after a button press: {self.stderr_tail()}"
            )

    def cpu_percent_over(self, seconds: float, window_s: float = CPU_WINDOW_S) -> dict:
        """CPU of the whole process per wall second over `seconds`, as % of one core, taken in
        consecutive windows of about `window_s` (see `summarize_windows`)."""
        figures = cpu_over(self.proc.pid, seconds, window_s)
        if self.proc.poll() is not None:
            raise ProcessError(f"{self.argv[1:4]} exited during the CPU measurement: {self.stderr_tail()}")
        return figures

    def stderr_tail(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no stderr)"
        return lines[-1] if lines else "(no stderr)"

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.send("q\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.notified.close()
        marker = self.workdir / TMPFS_MARKER
        if marker.exists():
            shutil.rmtree(marker.read_text(), ignore_errors=True)


def measure_program(
    command: Command, *, cwd: Path, idle_s: float, running_s: float, running_marker: str, settle_s: float = 1.0
) -> dict:
    """Start-up, idle CPU, running-session CPU and peak RSS of one run of `command`.

    `running_marker` is the STATUS= text that proves the session is on (lamp lit).
    """
    with tempfile.TemporaryDirectory(prefix="irlamp-bench-proc-") as tmp:
        workdir = Path(tmp)
        with Program(command, workdir, cwd) as prog:
            startup_s = prog.wait_ready()
            time.sleep(settle_s)
            idle = prog.cpu_percent_over(idle_s)
            prog.press_until(running_marker)
            running = prog.cpu_percent_over(running_s)
            pid = prog.proc.pid
            rss_peak_kb = status_field_kb(pid, "VmHWM")
            threads = status_field_kb(pid, "Threads")
        return {
            "startup_s": round(startup_s, 4),
            "idle": idle,
            "running": running,
            "rss_peak_mb": round(rss_peak_kb / 1024.0, 2),
            "threads": threads,
        }


def measure_chip_share(command: Command, *, cwd: Path, running_s: float, settle_s: float = 1.0) -> dict:
    """A session of `command` (bench/emulated_program.py) with its emulated chips' CPU counted
    (bench/chip_cpu.py): the process's CPU and the chips' part of it, over `running_s`."""
    from bench import chip_cpu

    with tempfile.TemporaryDirectory(prefix="irlamp-bench-chips-") as tmp:
        workdir = Path(tmp)
        counted = workdir / "chip-cpu"
        with Program(command, workdir, cwd, env={chip_cpu.ENV: str(counted)}) as prog:
            prog.wait_ready()
            time.sleep(settle_s)
            prog.press_until("lamp ON")
            time.sleep(2 * chip_cpu.WRITE_EVERY_S)
            chips0 = chip_cpu.read_total_s(counted)
            window = prog.cpu_percent_over(running_s)
            chips1 = chip_cpu.read_total_s(counted)
    return {
        **window,
        # a share of the whole span (the chips' CPU is counted over all of it), so of its mean
        "emulated_chips_percent": round(100.0 * (chips1 - chips0) / window["wall_s"], 3),
    }


def measure_startups(command: Command, *, cwd: Path, count: int) -> list[float]:
    """`count` fresh starts to READY=1 (each then told to quit)."""
    times = []
    for _ in range(count):
        with tempfile.TemporaryDirectory(prefix="irlamp-bench-start-") as tmp:
            with Program(command, Path(tmp), cwd) as prog:
                times.append(round(prog.wait_ready(), 4))
    return times


def irlamp_command(workdir: Path) -> list[str]:
    """`irlamp run --simulate` with its journal and status file in `workdir`."""
    import sys

    state, runtime = workdir / "state", runtime_dir(workdir)
    state.mkdir(exist_ok=True)
    config = Path(__file__).resolve().parent.parent / "config" / "lamp.yaml"
    return [
        sys.executable,
        "-m",
        "controller.cli",
        "run",
        "--simulate",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "--runtime-dir",
        str(runtime),
    ]


def emulated_command(workdir: Path) -> list[str]:
    """`irlamp run` on the real readers over emulated chips (bench/emulated_program.py)."""
    import sys

    state, runtime = workdir / "state", runtime_dir(workdir)
    state.mkdir(exist_ok=True)
    return [sys.executable, "-m", "bench.emulated_program", "--state-dir", str(state), "--runtime-dir", str(runtime)]


def baseline_command(workdir: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "bench.baseline"]


def sleeping_baseline_command(workdir: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "bench.baseline", "--sleeping"]
