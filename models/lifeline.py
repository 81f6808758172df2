"""A worker dies with the engine that started it, whatever kills the engine.

Three guards, each for a way the engine can go:
- `PR_SET_PDEATHSIG` (Linux, ctypes `prctl`): the kernel sends SIGKILL when the worker's parent
  dies. A LocalExecutor worker's parent is the fork server, so this covers a killed fork server.
- `watch_parent`: a daemon thread that polls the engine's pid (a zombie counts as dead) and ends
  the worker within `poll_s`. This covers a kill -9 of the engine: the fork server itself would
  not notice, since every worker holds the write end of its "alive" pipe; once the workers are
  gone, that pipe closes and the fork server and resource tracker exit by themselves.
- `own_process_group`: the worker leads its own process group, so the engine ends the whole
  tree below it with one `killpg` on every exit path, and a terminal's Ctrl-C reaches only the
  engine, which cancels the job in order instead of the workers dying mid-write.
"""

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        status: int = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)  # ctypes' default restype: C int
        return status == 0
    except (OSError, AttributeError):
        return False


def is_alive(pid: int) -> bool:
    """Whether process `pid` still runs (on Linux a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return text[text.rindex(")") + 2] not in "ZX"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: signal 0 tells existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def watch_parent(parent_pid: int, poll_s: float = 0.25) -> threading.Thread:
    """Start a daemon thread that ends this process (os._exit(1)) once `parent_pid` is gone."""

    def watch() -> None:
        while is_alive(parent_pid):
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="curate-lifeline", daemon=True)
    thread.start()
    return thread


def own_process_group() -> None:
    """Make this process the leader of a new process group (no-op where that is not possible)."""
    try:
        os.setpgid(0, 0)
    except (AttributeError, OSError):
        pass


def die_with(parent_pid: int | None) -> None:
    """All three guards, for a worker process started by the engine with pid `parent_pid`."""
    own_process_group()
    set_parent_death_signal()
    if parent_pid is not None:
        watch_parent(parent_pid)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (the worker and anything it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (AttributeError, OSError):
        pass
