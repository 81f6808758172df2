"""Atomic file writes: the one tmp-then-rename helper of the service.

A file is written under a temporary name in its own folder (`<name>.<pid>-<random>.tmp`: two
writers never share one), flushed to disk, then renamed onto its final name, so a reader sees
either the old file or the whole new one, never a part. A crash leaves only a `*.tmp` file, which
the start-up sweeps delete (`TMP_SUFFIX`).
"""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def tmp_path_for(path: Path) -> Path:
    """A fresh temporary name next to `path`."""
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


@contextmanager
def atomic_path(path: Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; on a clean exit it replaces `path`
    (after an fsync), on an exception it is removed and `path` is left as it was."""
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; a leftover on error


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    with atomic_path(path, fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync)
