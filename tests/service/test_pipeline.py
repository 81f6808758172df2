"""End to end through the engine: real DuckDB file, real spawned workers, real training."""

from pathlib import Path

import numpy as np
import pytest

from models.spec import AdaBoostSpec, GroupTask, TrainSpec, cpu_has_native_bf16, mlp_layers_for
from scoring.phases import compute_agreement_index, detect_phases
from service.engine.engine import Engine
from service.engine.executors.local import LocalExecutor, _batched, _startable
from service.errors import InvalidSpec
from service.read import queries
from service.settings import Settings
from service.store import jobs
from service.store.results import StaleAttempt, commit_epochs
from tests.service.conftest import SMALL_SPEC, digits_arrays, digits_npz

SMALL = {**SMALL_SPEC, "n_epochs": 2}


def _digits_npz(tmp_path: Path, n: int = 300) -> tuple[Path, np.ndarray]:
    path, _ = digits_npz(tmp_path / "digits.npz", n=n)
    return path, digits_arrays(n)[1]


@pytest.fixture
def engine(tmp_path: Path):
    eng = Engine(Settings(data_dir=tmp_path / "data"))
    yield eng
    eng.close()


def _table_count(engine: Engine, table: str, job_id: str) -> int:
    with engine.store.reader() as cur:
        return cur.execute(f"SELECT count(*) FROM {table} WHERE job_id = ?", [job_id]).fetchone()[0]


def test_job_records_every_member_epoch_and_example(engine: Engine, tmp_path: Path) -> None:
    path, y = _digits_npz(tmp_path)
    ds = engine.add_dataset(path)
    job_id = engine.submit(ds.dataset_id, TrainSpec(**SMALL), AdaBoostSpec(n_rounds=5))
    job = engine.run(job_id)
    assert job.status == "succeeded", job.error
    assert job.epochs_done == job.epochs_total == 2
    # (members x (epochs + 1) x examples) ensemble rows and (1 x (rounds + 1) x examples) AdaBoost rows
    with engine.store.reader() as cur:
        counts = dict(cur.execute("SELECT model, count(*) FROM predictions WHERE job_id = ? GROUP BY model",
                                  [job_id]).fetchall())
        dupes = cur.execute("SELECT count(*) FROM (SELECT model, member, epoch, example_id, count(*) c "
                            "FROM predictions WHERE job_id = ? GROUP BY ALL HAVING c > 1)", [job_id]).fetchone()[0]
    assert counts == {"ensemble": 2 * 3 * len(y), "adaboost": 1 * 6 * len(y)}
    assert dupes == 0
    assert _table_count(engine, "example_scores", job_id) == len(y)
    assert _table_count(engine, "example_epoch_stats", job_id) == 3 * len(y)
    rows = queries.score_rows(engine.store, job_id)
    assert rows.column_names == list(queries.SCORE_COLUMNS)
    cons = rows.column("consistency").to_numpy()
    assert set(np.round(cons * 2).astype(int)) <= {0, 1, 2}  # 2 members: c in {0, 1/2, 1}
    assert job.summary["adaboost"]["n_examples"] == len(y)
    # the stored spec is resolved: Jumpout's and the MLP depth's by-data defaults filled in for 64 features
    assert job.spec.jumpout_sigma is not None and job.spec.jumpout_p_min is not None
    assert job.spec.n_hidden_layers == mlp_layers_for(len(y), 64)
    # the flags' estimated precision: the mean over the flagged of 1 - accessibility (votes against)
    flagged = rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False)
    accessibility = rows.column("accessibility").to_numpy()
    if flagged.any():
        assert job.summary["estimated_precision"] == pytest.approx(float((1 - accessibility[flagged]).mean()), abs=1e-6)
    assert job.summary["mislabel_method"] == "consistency_prob_margin" and job.summary["count_method"] == "margin"
    # phases and agreement index per epoch, stored once from the stored per-epoch consistency
    consistency = queries.epoch_consistency(engine.store, job_id)  # (epochs + 1, examples)
    stored = job.summary["phases"]
    assert stored["phase"] == detect_phases(consistency, 2, 10).tolist()
    np.testing.assert_allclose(stored["agreement_index"], compute_agreement_index(consistency, 2), rtol=1e-5)


def test_restart_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """A crash mid-training (the engine dies between commits) loses nothing committed; the
    resumed job ends with scores identical to an uninterrupted run with the same seed."""
    path, _ = _digits_npz(tmp_path)
    spec = TrainSpec(n_members=2, n_epochs=4, hidden_units=32, batch_size=128, random_state=7)

    class Crash(BaseException):
        pass

    class CrashAfter(LocalExecutor):
        def __init__(self, n_records: int) -> None:
            super().__init__()
            self.n_records = n_records

        def run(self, tasks, on_records, should_stop):  # type: ignore[no-untyped-def]
            seen = []

            def counting(task, records):  # type: ignore[no-untyped-def]
                for record in records:  # one at a time: the crash comes after exactly n commits
                    if len(seen) == self.n_records:
                        raise Crash()
                    on_records(task, [record])
                    seen.append(record.epoch)

            return super().run(tasks, counting, should_stop)

    crashed = Engine(Settings(data_dir=tmp_path / "a"), executor=CrashAfter(3))
    ds = crashed.add_dataset(path)
    job_id = crashed.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False))
    with pytest.raises(Crash):
        crashed.run(job_id)
    assert jobs.get_job(crashed.store, job_id).status == "running"
    assert jobs.get_job(crashed.store, job_id).epochs_done == 2  # epochs 0, 1, 2 committed
    crashed.close()

    restarted = Engine(Settings(data_dir=tmp_path / "a"))
    assert restarted.interrupted_jobs() == [job_id]
    resumed = restarted.run(job_id)
    assert resumed.status == "succeeded" and resumed.attempt == 2
    resumed_rows = queries.score_rows(restarted.store, job_id)
    with restarted.store.reader() as cur:
        per_epoch = cur.execute("SELECT epoch, count(*) FROM predictions WHERE job_id = ? GROUP BY epoch "
                                "ORDER BY epoch", [job_id]).fetchall()
    restarted.close()
    assert per_epoch == [(e, 2 * 300) for e in range(5)]  # no epoch lost or duplicated

    clean = Engine(Settings(data_dir=tmp_path / "b"))
    ds_b = clean.add_dataset(path)
    job_b = clean.run(clean.submit(ds_b.dataset_id, spec, AdaBoostSpec(enabled=False)))
    clean_rows = queries.score_rows(clean.store, job_b.job_id)
    clean.close()
    for col in ("consistency", "accessibility", "mislabel_score", "suggested_label", "split"):
        assert resumed_rows.column(col).to_pylist() == clean_rows.column(col).to_pylist(), col


def test_records_that_arrive_together_are_handed_over_together_in_order() -> None:
    ens, ada = ("ensemble", 0), ("adaboost", 0)
    messages = [("record", ada, 0), ("record", ada, 1), ("record", ens, 0), ("record", ada, 2),
                ("done", ada, None), ("record", ens, 1), ("record", ens, 2), ("failed", ens, "trace")]
    assert _batched(messages) == [("records", ada, [0, 1]), ("records", ens, [0]), ("records", ada, [2]),
                                  ("done", ada, None), ("records", ens, [1, 2]), ("failed", ens, "trace")]


def test_a_batch_of_epochs_commits_what_single_commits_would_and_all_or_nothing(tmp_path: Path) -> None:
    """AdaBoost's stages reach the engine in batches (one transaction each); the stored job is the
    one that committing every record alone stores. A batch out of epoch order, or of a stale
    attempt, writes nothing."""
    path, _ = _digits_npz(tmp_path)
    batches: list[tuple[str, int]] = []

    class OneByOne(LocalExecutor):
        def run(self, tasks, on_records, should_stop):  # type: ignore[no-untyped-def]
            def single(task, records):  # type: ignore[no-untyped-def]
                for record in records:
                    on_records(task, [record])

            return super().run(tasks, single, should_stop)

    class Counting(LocalExecutor):
        def run(self, tasks, on_records, should_stop):  # type: ignore[no-untyped-def]
            def counted(task, records):  # type: ignore[no-untyped-def]
                batches.append((task.model, len(records)))
                on_records(task, records)

            return super().run(tasks, counted, should_stop)

    tables = {}
    for name, executor in (("single", OneByOne()), ("batched", Counting())):
        eng = Engine(Settings(data_dir=tmp_path / name), executor=executor)
        ds = eng.add_dataset(path)
        job = eng.run(eng.submit(ds.dataset_id, TrainSpec(**SMALL, random_state=3), AdaBoostSpec(n_rounds=60)))
        assert job.status == "succeeded", job.error
        with eng.store.reader() as cur:
            tables[name] = [cur.execute(f"SELECT * EXCLUDE (job_id) FROM {t} WHERE job_id = ? ORDER BY ALL",
                                        [job.job_id]).fetchall() for t in ("predictions", "group_probs")]
            metrics = cur.execute("SELECT model, count(*) FROM epoch_metrics WHERE job_id = ? GROUP BY model",
                                  [job.job_id]).fetchall()
        assert dict(metrics) == {"ensemble": 3, "adaboost": 61}
        if name == "batched":
            task = GroupTask(job_id=job.job_id, attempt=job.attempt, model="adaboost", group=0, members=(0,),
                             spec=job.spec, adaboost=job.adaboost, x_path="", y_path="", n_classes=10)
            records = _adaboost_records(path)
            with pytest.raises(ValueError, match="out of epoch order"):
                commit_epochs(eng.store, task, [records[2], records[1]], live_status="succeeded")
            with pytest.raises(StaleAttempt):
                commit_epochs(eng.store, task.model_copy(update={"attempt": 99}), records[:3],
                              live_status="succeeded")
            with eng.store.reader() as cur:
                after = [cur.execute(f"SELECT * EXCLUDE (job_id) FROM {t} WHERE job_id = ? ORDER BY ALL",
                                     [job.job_id]).fetchall() for t in ("predictions", "group_probs")]
            assert after == tables[name]
        eng.close()
    assert tables["batched"] == tables["single"]
    ada_batches = [n for model, n in batches if model == "adaboost"]
    assert sum(ada_batches) == 61 and len(ada_batches) < 61  # the stages came in fewer transactions than records


def _adaboost_records(path: Path) -> list:  # type: ignore[type-arg]
    from models.adaboost import AdaBoostBaseline, boosting_features

    data = np.load(path)
    base = AdaBoostBaseline(n_rounds=5, learning_rate=0.5).fit(boosting_features(data["X"]), data["y"])
    return list(base.stage_records(data["y"], member=0, group=0))


def test_worker_failure_marks_job_failed_with_traceback_tail(engine: Engine, tmp_path: Path) -> None:
    path, _ = _digits_npz(tmp_path)
    ds = engine.add_dataset(path)
    spec = TrainSpec(**SMALL, device="cuda:7")
    with pytest.raises(InvalidSpec, match="cuda:7"):  # refused at submission by the engine...
        engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False))
    # ...so queue it past that check, to see a worker that fails anyway
    job_id = jobs.create_job(engine.store, ds.dataset_id, spec, engine.scoring_options(), AdaBoostSpec(enabled=False))
    job = engine.run(job_id)
    assert job.status == "failed"
    assert "cuda:7" in job.error and "CUDA is not available" in job.error
    with pytest.raises(Exception, match="failed"):
        queries.score_rows(engine.store, job_id)


def test_bad_dataset_stores_nothing_and_keeps_existing(engine: Engine, tmp_path: Path) -> None:
    path, _ = _digits_npz(tmp_path)
    good = engine.add_dataset(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,inf,y\n5,6,x\n7,8,y\n")  # infinite: refused (a word is a category now)
    with pytest.raises(Exception, match="bad.csv.*'b'"):
        engine.add_dataset(bad)
    assert [d.dataset_id for d in queries.list_datasets(engine.store)] == [good.dataset_id]
    assert sorted(p.name for p in engine.settings.datasets_dir.iterdir()) == [good.dataset_id]
    with engine.store.reader() as cur:
        assert cur.execute("SELECT count(*) FROM examples").fetchone()[0] == 300


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    from service.store.db import SCHEMA_VERSION, Store

    store = Store(tmp_path / "x.duckdb")
    with store.transaction() as cur:
        cur.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    store.close()
    with pytest.raises(RuntimeError, match="upgrade Curate"):
        Store(tmp_path / "x.duckdb")


def test_adaboost_starts_beside_the_member_groups_not_after_them() -> None:
    def task(model: str, group: int) -> GroupTask:
        return GroupTask(job_id="j", attempt=1, model=model, group=group, members=(group,), spec=TrainSpec(),
                         adaboost=AdaBoostSpec(), x_path="X.npy", y_path="y.npy", n_classes=2)

    g0, g1, g2, ada = task("ensemble", 0), task("ensemble", 1), task("ensemble", 2), task("adaboost", 0)
    assert _startable([g0, g1, g2, ada], {}, max_workers=1) == [g0, ada]
    assert _startable([g1, g2], {("ensemble", 0): (g0, None), ("adaboost", 0): (ada, None)}, 1) == []
    assert _startable([g1, g2], {("adaboost", 0): (ada, None)}, 1) == [g1]  # AdaBoost takes no group slot
    assert _startable([g1, g2, ada], {}, max_workers=2) == [g1, g2, ada]


def test_a_spec_whose_by_data_rates_cannot_hold_is_refused_and_queues_nothing(engine: Engine, tmp_path: Path) -> None:
    path, _ = _digits_npz(tmp_path)  # 300 examples of 64 features: the strong row, p_min 0.2
    ds = engine.add_dataset(path)
    with pytest.raises(InvalidSpec, match=f"dataset {ds.dataset_id}: jumpout_p_min 0.2 exceeds jumpout_p_max 0.15"):
        engine.submit(ds.dataset_id, TrainSpec(**SMALL, jumpout_p_max=0.15), AdaBoostSpec(enabled=False))
    assert jobs.list_jobs(engine.store) == []


def test_an_image_job_on_this_cpu_gets_the_cnn_width_of_its_size_and_says_so(engine: Engine, tmp_path: Path) -> None:
    """No CUDA device here: a small image set keeps the wide CNN, one of a million pixel values
    and more the narrow one; a width the user set stays; the queued event names the width."""
    rng = np.random.default_rng(0)
    widths = {}
    for name, (n, side) in {"small": (200, 8), "large": (1600, 25)}.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, X=rng.integers(0, 255, (n, 1, side, side), dtype=np.uint8), y=np.arange(n) % 4)
        ds = engine.add_dataset(path)
        assert ds.kind == "image"
        for spec in (TrainSpec(**SMALL), TrainSpec(**SMALL, cnn_width=12)):
            job = jobs.get_job(engine.store, engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False)))
            with engine.store.reader() as cur:
                queued = cur.execute("SELECT message FROM events WHERE job_id = ? AND kind = 'queued'",
                                     [job.job_id]).fetchone()[0]
            assert queued.endswith(f", CNN width {job.spec.cnn_width}, {job.spec.precision}")
            # precision auto: bf16 for a CNN where this CPU has native bf16, else fp32
            assert job.spec.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
            widths[name, spec.cnn_width] = job.spec.cnn_width
    assert widths == {("small", None): 32, ("small", 12): 12, ("large", None): 16, ("large", 12): 12}


def test_an_image_job_on_the_mlp_stores_two_hidden_layers_where_a_table_of_its_numbers_gets_three(
        engine: Engine, tmp_path: Path) -> None:
    """1,600 images of 1x8x8 are 25 examples a pixel (three layers for a table); fed to the MLP as
    raw pixels they keep two, and the stored spec says so."""
    rng = np.random.default_rng(0)
    depths = {}
    for name, X in {"image": rng.integers(0, 255, (1600, 1, 8, 8), dtype=np.uint8),
                    "tabular": rng.normal(size=(1600, 64)).astype(np.float32)}.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, X=X, y=np.arange(1600) % 4)
        ds = engine.add_dataset(path)
        assert ds.kind == name
        job = jobs.get_job(engine.store, engine.submit(ds.dataset_id, TrainSpec(**{**SMALL, "model": "mlp"}),
                                                       AdaBoostSpec(enabled=False)))
        depths[name] = job.spec.n_hidden_layers
    assert depths == {"image": 2, "tabular": 3}
