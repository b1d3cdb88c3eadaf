"""Child processes that never outlive the test run.

Three layers, because each one alone has a hole:

* every server runs in its own process group, and stopping it signals the whole group (TERM, then
  KILL after a grace period);
* ``at_exit`` callbacks run on normal interpreter exit (``atexit``) and on SIGTERM/SIGHUP, which
  would otherwise kill Python without running ``atexit`` or ``finally`` blocks;
* on Linux the kernel sends the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), which
  covers SIGKILL and crashes of the test process. The kernel ties this to the *thread* that forked,
  so it is only armed when spawning from the main thread (the usual case in pytest).

Detached servers (``python -m e2e.testenv up``) get a session of their own instead and are stopped by
process group id from the state file.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from types import FrameType

GRACE = 10.0  # seconds between SIGTERM and SIGKILL
_PR_SET_PDEATHSIG = 1
_CATCH = (signal.SIGTERM, signal.SIGHUP)

_callbacks: dict[int, Callable[[], None]] = {}
_tokens = itertools.count(1)
_lock = threading.Lock()
_installed = False


def _load_prctl() -> Callable[..., int] | None:
    """Resolved in the parent: loading a library between fork and exec can deadlock."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError, AttributeError):
        prctl: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
        return prctl
    return None


_prctl = _load_prctl()


def spawn(
    argv: list[str], *, log: pathlib.Path, detached: bool = False, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``, in its own process group.

    ``pass_fds``: file descriptors the child inherits (the node's API forwarder gets its socket so)."""
    with log.open("ab") as sink:
        if detached:
            return subprocess.Popen(
                argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        arm = _prctl is not None and threading.current_thread() is threading.main_thread()
        return subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with(os.getpid()) if arm else None,
            pass_fds=pass_fds,
        )


def _die_with(parent: int) -> Callable[[], None]:
    def arm() -> None:
        assert _prctl is not None
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def stop_group(pid: int, *, grace: float = GRACE) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it if it is still there after ``grace`` seconds.

    Works for processes that are not our children too (``down`` stops what ``up`` started), so it
    waits by polling instead of ``waitpid``.
    """
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if group_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while group_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process in the group? Zombies hold nothing and vanish when reaped."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return not pathlib.Path("/proc/self").exists()  # no procfs: trust killpg


def at_exit(callback: Callable[[], None]) -> int:
    """Run ``callback`` when the interpreter exits or is told to terminate; returns a token for ``cancel``."""
    global _installed
    with _lock:
        token = next(_tokens)
        _callbacks[token] = callback
        if not _installed:
            atexit.register(run_callbacks)
            _install_signal_handlers()
            _installed = True
    return token


def cancel(token: int) -> None:
    with _lock:
        _callbacks.pop(token, None)


def run_callbacks() -> None:
    with _lock:
        pending = list(_callbacks.values())
        _callbacks.clear()
    for callback in reversed(pending):
        with contextlib.suppress(Exception):
            callback()


def _install_signal_handlers() -> None:
    """Chain onto SIGTERM/SIGHUP: clean up, then let the previous disposition run (default: die)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _CATCH:
        previous = signal.getsignal(sig)
        if previous is signal.SIG_IGN:
            continue

        def handler(signum: int, frame: FrameType | None, *, previous: object = previous) -> None:
            run_callbacks()
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)
