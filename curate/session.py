"""One in-process engine per data directory, shared by every `curate.score`, `curate.load` and
`curate.Recorder` of this Python process, and closed when it exits.

The engine (service.engine.engine.Engine, through the CLI's LocalBackend) is the only opener of its
DuckDB file, so a notebook keeps one open instead of opening a second per call. A data_dir of None
is a temporary directory, removed at exit with everything in it.
"""

import atexit
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from service.cli.backends import LocalBackend
from service.cli.client import CurateError
from service.settings import Settings

_lock = threading.Lock()
_backends: dict[Path, LocalBackend] = {}
_temporary: list[Path] = []


SCRIPT_HINT = ("a script that calls curate must do so under `if __name__ == \"__main__\":` (Curate trains in "
               "worker processes, which import the script again, as all Python multiprocessing does)")


def local_backend(data_dir: str | Path | None = None) -> LocalBackend:
    """The engine of `data_dir` (a temporary one when None), opened on first use."""
    main = sys.modules.get("__main__")
    if main is not None and main.__name__ == "__mp_main__":  # a worker importing the user's unguarded script
        raise CurateError(f"curate was called while a worker process imported your script: {SCRIPT_HINT}",
                          "unguarded_script")
    with _lock:
        if data_dir is None:
            if not _temporary:
                _temporary.append(Path(tempfile.mkdtemp(prefix="curate-data-")))
            data_dir = _temporary[0]
        root = Path(data_dir).expanduser().resolve()
        if root not in _backends:
            _backends[root] = LocalBackend(Settings(data_dir=root))
        return _backends[root]


def close(data_dir: str | Path | None = None) -> None:
    """Close the engine of `data_dir` (every one when None), releasing its DuckDB file for a
    `curate serve` or another process. A later call opens it again."""
    with _lock:
        roots = list(_backends) if data_dir is None else [Path(data_dir).expanduser().resolve()]
        for root in roots:
            backend = _backends.pop(root, None)
            if backend is not None:
                backend.close()


def _at_exit() -> None:
    close()
    for folder in _temporary:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_at_exit)
