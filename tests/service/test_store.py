"""Closing the DuckDB store while other threads read: the server's shutdown closes it while job
threads may still be warming the result cache (CI once failed on ResourceInUseException there)."""

import json
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


def test_a_spec_stored_before_label_smoothing_keeps_what_its_job_trained_with(monkeypatch) -> None:
    """Jobs stored before 2026-12-07 trained without label smoothing, and precision "auto" meant
    bf16 on CUDA only: loading their spec pins both, so a resume trains as the job began."""
    import service.store.jobs as store_jobs
    from models.spec import LABEL_SMOOTHING, TrainSpec

    monkeypatch.setattr(store_jobs, "cuda_device_count", lambda: 0)
    old = json.loads(TrainSpec(device="auto").model_dump_json())
    del old["label_smoothing"]
    assert old["precision"] == "auto"
    legacy = store_jobs.stored_spec(json.dumps(old))
    assert legacy.label_smoothing == 0.0 and legacy.precision == "fp32"
    on_cuda = store_jobs.stored_spec(json.dumps({**old, "device": "cuda"}))
    assert on_cuda.label_smoothing == 0.0 and on_cuda.precision == "auto"  # bf16 on CUDA, as it was
    monkeypatch.setattr(store_jobs, "cuda_device_count", lambda: 1)
    assert store_jobs.stored_spec(json.dumps(old)).precision == "auto"  # a host with a GPU: as it was
    new = TrainSpec(precision="bf16").model_dump_json()  # a new job's stored spec is left as it is
    assert store_jobs.stored_spec(new) == TrainSpec(precision="bf16")
    assert store_jobs.stored_spec(new).label_smoothing == LABEL_SMOOTHING
