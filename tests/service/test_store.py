"""Closing the DuckDB store while other threads read: the server's shutdown closes it while job
threads may still be warming the result cache (CI once failed on ResourceInUseException there)."""

import threading
import time
from pathlib import Path

import pytest

from service.store.db import Store, StoreClosed


def test_close_waits_for_readers_and_refuses_new_cursors(tmp_path: Path) -> None:
    for trial in range(10):  # without the turn-taking, close raised in about 2 of 3 trials
        store = Store(tmp_path / f"{trial}.duckdb")
        errors: list[str] = []
        stop = threading.Event()

        def read(store: Store = store, stop: threading.Event = stop, errors: list[str] = errors) -> None:
            while not stop.is_set():
                try:
                    with store.reader() as cur:
                        assert cur.execute("SELECT 42").fetchone() == (42,)
                except StoreClosed:
                    return
                except Exception as exc:  # noqa: BLE001 (any other error is the failure)
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.02)
        store.close()
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
    with pytest.raises(StoreClosed, match="shutting down"), store.reader():
        pass
    with pytest.raises(StoreClosed), store.transaction():
        pass
