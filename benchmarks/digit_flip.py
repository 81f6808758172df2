"""Benchmark: the digit-flip test for bias attribution (SCIENCE.md section 3) on scikit-learn digits.

    python benchmarks/digit_flip.py [--models mlp,cnn] [--members 3] [--epochs 40]
        [--pairs 8:3,8:6,9:4,4:1,7:1,3:8] [--out benchmarks/results]

Digits are 8x8 images scaled to [0, 1] (background 0): 64 inputs for the MLP, 1x8x8 for the CNN.
A few members of a Curate ensemble net (`models.nets.build_ensemble`) are trained here on 80 % of
the data. For every test image of a source class o and a target class t, each method scores the
pixels by S_o - S_t; up to 13 pixels (20 %) with the largest positive difference are erased (set
to 0) and we record the increase of the pre-softmax log-odds logit_t - logit_o, per member.
"random" erases 13 random non-background pixels, as a floor. Pairs 8->3 and 8->6 are the ones
DeepLIFT's figure shows; the others are ours. Also reported: how often the argmax over classes of
the gradient term alone, of the bias term alone, and of the logit gives the true label.

Writes `<out>/digit_flip.json`, `.md` and `.png` (box plots) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `models` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.report import markdown_table  # noqa: E402
from models.attribution import (  # noqa: E402
    PAPER_NAMES,
    PiecewiseLinearNet,
    bias_backprop,
    explain,
    extract_member,
)
from models.nets import EnsembleCNN, build_ensemble, member_seed  # noqa: E402
from models.spec import TrainSpec  # noqa: E402

METHODS = ("bias", "bias_uniform", "bias_signed", "gradient_x_input", "integrated_gradients_5",
           "integrated_gradients_10", "full", "random")
N_ERASE = 13  # 20 % of 64 pixels
RANDOM_STATE = 0


# --- data and training ---------------------------------------------------------------------------

def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1], split 80/20 stratified: X_train, X_test (n, 64), y_train, y_test."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y.astype(np.int64), test_size=0.2, stratify=y, random_state=RANDOM_STATE)
    return X_train, X_test, y_train, y_test


def as_model_input(kind: str, X: np.ndarray) -> np.ndarray:
    return X.reshape(-1, 1, 8, 8) if kind == "cnn" else X


def train_members(kind: str, X: np.ndarray, y: np.ndarray, n_members: int, n_epochs: int) -> nn.Module:
    """Our own short loop (the Ensemble wrapper keeps no nets): AdamW, each member its own shuffle."""
    spec = TrainSpec(n_members=n_members, n_epochs=n_epochs, hidden_units=128, n_hidden_layers=2, cnn_width=16,
                     batch_size=64, learning_rate=3e-3, device="cpu", random_state=RANDOM_STATE)
    gen = torch.Generator().manual_seed(member_seed(RANDOM_STATE, 0xD1))
    Xm = torch.as_tensor(as_model_input(kind, X), dtype=torch.float32)
    members = list(range(n_members))
    net = build_ensemble(kind, members, tuple(Xm.shape[1:]), 10, spec, gen)
    opt = torch.optim.AdamW(net.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    yt, loss_fn = torch.as_tensor(y), nn.CrossEntropyLoss()
    n_steps = int(np.ceil(len(y) / spec.batch_size))
    net.train()
    for epoch in range(n_epochs):
        order = np.stack([np.random.default_rng(member_seed(RANDOM_STATE, m, epoch)).permutation(len(y))
                          for m in members])  # (M, n)
        for step in range(n_steps):
            idx = torch.as_tensor(order[:, step * spec.batch_size:(step + 1) * spec.batch_size])  # (M, B)
            xb = Xm[idx]
            logits = net(net.member_batches(xb)) if isinstance(net, EnsembleCNN) else net(xb)  # (M, B, K)
            loss = sum(loss_fn(logits[m], yt[idx[m]]) for m in range(n_members))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


# --- the digit-flip test -------------------------------------------------------------------------

def scores(pl: PiecewiseLinearNet, x: np.ndarray, source: int, target: int, method: str,
           rng: np.random.Generator) -> np.ndarray:
    """S_o - S_t per pixel, (n, 64). "random": a random positive score on non-background pixels."""
    if method == "random":
        flat = x.reshape(len(x), -1)
        return np.where(flat > 0, rng.random(flat.shape) + 1e-9, 0.0)
    diff = explain(pl, x, source, method) - explain(pl, x, target, method)
    return diff.reshape(len(x), -1)


def erase(x: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set to 0 up to N_ERASE pixels with the largest positive score; the erased images and the
    number of erased pixels that were not background already."""
    flat = x.reshape(len(x), -1).copy()
    top = np.argsort(-score, axis=1, kind="stable")[:, :N_ERASE]
    chosen = np.take_along_axis(score, top, axis=1) > 0
    rows = np.repeat(np.arange(len(x))[:, None], N_ERASE, axis=1)
    n_real = (np.take_along_axis(flat, top, axis=1) > 0) & chosen
    flat[rows[chosen], top[chosen]] = 0.0
    return flat.reshape(x.shape), n_real.sum(axis=1)


def log_odds(pl: PiecewiseLinearNet, x: np.ndarray, source: int, target: int) -> np.ndarray:
    logits = pl.logits(torch.as_tensor(x)).numpy()
    return logits[:, target] - logits[:, source]


def flip_case(pl: PiecewiseLinearNet, x: np.ndarray, source: int, target: int, method: str,
              rng: np.random.Generator) -> dict[str, list[float]]:
    erased, n_real = erase(x, scores(pl, x, source, target, method, rng))
    gain = log_odds(pl, erased, source, target) - log_odds(pl, x, source, target)
    return {"gain": np.round(gain, 4).tolist(), "n_foreground_erased": n_real.astype(float).tolist()}


def bias_matters(pl: PiecewiseLinearNet, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy of argmax over classes of the gradient term, the bias term and the logit."""
    parts = [bias_backprop(pl, x, c, "uniform") for c in range(10)]
    grad = np.stack([p.gradient_term for p in parts], axis=1)
    bias = np.stack([p.bias_term for p in parts], axis=1)
    logit = np.stack([p.logit for p in parts], axis=1)
    return {"gradient_term": float((grad.argmax(1) == y).mean()), "bias_term": float((bias.argmax(1) == y).mean()),
            "logit": float((logit.argmax(1) == y).mean()),
            "completeness_error": float(np.abs(grad + bias - logit).max()),
            "mean_abs_bias_share": float((np.abs(bias) / (np.abs(grad) + np.abs(bias))).mean())}


def run_model(kind: str, data: tuple, pairs: list[tuple[int, int]], n_members: int, n_epochs: int,
              console: Console) -> dict:
    X_train, X_test, y_train, y_test = data
    started = time.perf_counter()
    net = train_members(kind, X_train, y_train, n_members, n_epochs)
    train_seconds = time.perf_counter() - started
    x_test = as_model_input(kind, X_test)
    gains = {f"{o}->{t}": {m: [] for m in METHODS} for o, t in pairs}
    foreground = {f"{o}->{t}": {m: [] for m in METHODS} for o, t in pairs}
    matters = []
    for member in range(n_members):
        pl = extract_member(net, member)
        matters.append(bias_matters(pl, x_test, y_test))
        rng = np.random.default_rng(member_seed(RANDOM_STATE, 0xF11B, member))
        for o, t in pairs:
            x = x_test[y_test == o]
            for method in METHODS:
                case = flip_case(pl, x, o, t, method, rng)
                gains[f"{o}->{t}"][method] += case["gain"]
                foreground[f"{o}->{t}"][method] += case["n_foreground_erased"]
    console.print(f"{kind}: trained {n_members} members in {train_seconds:.1f} s; "
                  f"test accuracy {[round(m['logit'], 3) for m in matters]}")
    return {"train_seconds": train_seconds, "gains": gains, "foreground_erased": foreground,
            "bias_matters": matters, "seconds": time.perf_counter() - started}


# --- report --------------------------------------------------------------------------------------

def summarise(result: dict) -> list[dict]:
    rows = []
    for pair, by_method in [*result["gains"].items(), ("all", _pooled(result["gains"]))]:
        fg = result["foreground_erased"].get(pair) or _pooled(result["foreground_erased"])
        for method, gains in by_method.items():
            g = np.asarray(gains)
            rows.append({"pair": pair, "method": method, "n": int(g.size), "mean": float(g.mean()),
                         "median": float(np.median(g)), "q25": float(np.quantile(g, 0.25)),
                         "q75": float(np.quantile(g, 0.75)), "foreground_erased": float(np.mean(fg[method]))})
    return rows


def _pooled(by_pair: dict) -> dict:
    return {m: [v for pair in by_pair.values() for v in pair[m]] for m in METHODS}


def table_lines(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["pair", "method", "n", "mean gain", "median gain", "IQR", "foreground px erased"]
    body = [[r["pair"], r["method"], str(r["n"]), f"{r['mean']:.2f}", f"{r['median']:.2f}",
             f"{r['q25']:.2f}..{r['q75']:.2f}", f"{r['foreground_erased']:.1f}"] for r in rows]
    return header, body


def bias_matters_lines(report: dict) -> tuple[list[str], list[list[str]]]:
    header = ["model", "member", "acc(argmax gradient term)", "acc(argmax bias term)", "acc(argmax logit)",
              "mean |b|/(|g|+|b|)", "max |g+b-logit|"]
    body = [[kind, str(i), f"{m['gradient_term']:.3f}", f"{m['bias_term']:.3f}", f"{m['logit']:.3f}",
             f"{m['mean_abs_bias_share']:.3f}", f"{m['completeness_error']:.1e}"]
            for kind, res in report["models"].items() for i, m in enumerate(res["bias_matters"])]
    return header, body


def print_report(console: Console, report: dict) -> None:
    for kind, res in report["models"].items():
        table = Table(title=f"digit flip, {kind}: increase of logit_t - logit_o after erasing")
        header, body = table_lines(res["summary"])
        for h in header:
            table.add_column(h)
        for row in body:
            table.add_row(*row)
        console.print(table)
    table = Table(title="does the bias term matter? (test accuracy)")
    header, body = bias_matters_lines(report)
    for h in header:
        table.add_column(h)
    for row in body:
        table.add_row(*row)
    console.print(table)


def save_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "digit_flip.json").write_text(json.dumps(report, indent=1))
    machine = report["machine"]
    lines = ["# Digit-flip benchmark (bias attribution)", "", f"Command: `{machine['command']}`", "",
             "Machine: " + ", ".join(f"{k} {machine[k]}" for k in machine if k != "command"), "",
             f"Config: {report['config']}. Rule names -> paper [check]: {PAPER_NAMES}.", "",
             "Gain = (logit_t - logit_o) after erasing minus before, per image and member (higher = the method "
             "found the pixels that make o look like t). `bias` = abs_contrib rule, `full` = gradient x input + "
             "bias. `foreground px erased` = erased pixels that were not background already (at most 13).", ""]
    for kind, res in report["models"].items():
        lines += [f"## {kind} ({res['train_seconds']:.1f} s training, {res['seconds']:.1f} s in all)", "",
                  markdown_table(*table_lines(res["summary"])), ""]
    lines += ["## Does the bias term matter?", "", markdown_table(*bias_matters_lines(report)), "",
              f"Total wall time: {report['total_seconds']:.1f} s", ""]
    (out / "digit_flip.md").write_text("\n".join(lines))
    plot(out / "digit_flip.png", report)


def plot(path: Path, report: dict) -> None:
    kinds = list(report["models"])
    pairs = list(next(iter(report["models"].values()))["gains"])
    fig, axes = plt.subplots(len(kinds), len(pairs), figsize=(3.2 * len(pairs), 3.6 * len(kinds)),
                             squeeze=False, sharey="row")
    for r, kind in enumerate(kinds):
        for c, pair in enumerate(pairs):
            ax = axes[r][c]
            gains = report["models"][kind]["gains"][pair]
            ax.boxplot([gains[m] for m in METHODS], showfliers=False)
            ax.set_xticks(range(1, len(METHODS) + 1), [m.replace("integrated_gradients_", "ig") for m in METHODS],
                          rotation=70, fontsize=7)
            ax.set_title(f"{kind} {pair}", fontsize=9)
            ax.axhline(0, color="grey", lw=0.5)
        axes[r][0].set_ylabel("increase of logit_t - logit_o")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def describe_machine() -> dict[str, str | int | None]:
    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "numpy": package("numpy"), "torch": package("torch"),
            "scikit-learn": package("scikit-learn"), "command": " ".join(["python", *sys.argv])}


# --- command line --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pairs", default="8:3,8:6,9:4,4:1,7:1,3:8")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    if any(k not in ("mlp", "cnn") for k in args.models):
        parser.error(f"--models takes mlp and/or cnn, got {args.models}")
    args.pairs = [tuple(int(v) for v in p.split(":")) for p in args.pairs.split(",")]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny nets: one thread is fastest; two spin-wait on a busy 2-core machine
    console = Console(width=max(Console().width, 140))
    start = time.perf_counter()
    data = load_data()
    models = {}
    for kind in args.models:
        res = run_model(kind, data, args.pairs, args.members, args.epochs, console)
        res["summary"] = summarise(res)
        models[kind] = res
    report = {"machine": describe_machine(), "total_seconds": time.perf_counter() - start,
              "config": {"models": args.models, "members": args.members, "epochs": args.epochs,
                         "pairs": [f"{o}->{t}" for o, t in args.pairs], "n_erase": N_ERASE,
                         "random_state": RANDOM_STATE},
              "models": models}
    print_report(console, report)
    save_report(args.out, report)
    console.print(f"wrote {args.out}/digit_flip.json, .md and .png")
    return report


if __name__ == "__main__":
    main()
