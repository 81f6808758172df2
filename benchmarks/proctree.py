"""Process trees from /proc (Linux; psutil is not a dependency): who descends from a pid, who is
still alive, and how much memory a tree holds. Used by the orphan tests and benchmarks/faults.py."""

import os
import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] != "Z":
                parents.setdefault(st[1], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids among `pids` that still run (zombies count as gone)."""
    return [p for p in pids if (st := _stat(p)) is not None and st[0] != "Z"]


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait up to `timeout` s for every pid to end; returns those still alive."""
    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def describe(pids: list[int]) -> str:
    """pid, state, parent and command line of each, for a failure message saying who outlived whom."""
    lines = []
    for pid in pids:
        st = _stat(pid)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            cmd = "?"
        lines.append(f"{pid} state={st[0] if st else 'gone'} ppid={st[1] if st else '-'} {cmd}")
    return "; ".join(lines)


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and every process below it (shared pages counted per process)."""
    return sum(rss_bytes(p) for p in [pid, *descendants(pid)])
