"""Benchmark: training and record-pass throughput of member groups, and one `curate score` job end to end.

    python benchmarks/throughput.py [--device auto|cpu|cuda] [--threads 1,2] [--members 8,16]
        [--cnn-members 8] [--cnn-images 2048] [--cnn-steps 2] [--cnn-batch N] [--compile MODES]
        [--variants] [--record-compile] [--skip-mlp] [--skip-cnn] [--skip-cnn-basic] [--skip-cli]
        [--profile] [--quick] [--out benchmarks/results]
    (on a GPU machine: benchmarks/gpu_check.sh)

Sections (every timing after warm-up; torch threads set per row; CUDA synchronised before reads):
  1. MLP steps: 50,000 x 64 synthetic tabular data, 10 classes, default TrainSpec (256 units x 2
     layers, Jumpout, auto batch 256). One group of N members (vectorised, baddbmm) against N
     groups of 1 member trained one after another, same steps and examples per member. The step
     is train_group's loop body (models.ensemble helpers: data.batch(idx), forward, loss, AdamW).
     Also the same step with AdamW(fused=True), a proposed change measured without editing code.
  2. Dropout overhead: the vectorised step with dropout none / dropout / jumpout.
  3. MLP epochs through `train_group` itself (real code path, largest N, first thread count):
     epoch 0 is the record pass alone; epoch 1 is train + record; train = epoch 1 - epoch 0.
  4. CNN: CIFAR-shaped synthetic uint8 images (3 x 32 x 32), EnsembleCNN at the multiple-of-8
     width whose parameter count per member is nearest 2M; training steps at batch 128 and the
     record pass (`_record`, all members on a chunk). On CPU a subset and a few steps keep this to
     minutes.
  4b. CNN variants (default on a GPU only; the issue's GPU targets): the ~2M-parameter CNN at N = 16
     and batch 512, and the default job's width-32 CNN at batch 256, with dropout none / Jumpout,
     channels_last / NCHW, eager / compiled (first step = compilation); the record pass by chunk
     size; torch.profiler kernel tables of the fastest Jumpout steps and of the record pass.
  5. `curate score` on scikit-learn digits (16 members x 30 epochs), a subprocess timed wall to
     wall, with CURATE_TORCH_THREADS = each thread count, AdaBoost off and on; plus the parts of
     that time measured in isolation (imports, train_group in-process, record pass, AdamW).
     --profile also runs one job under py-spy and sums its samples by category.

Writes `<out>/throughput.json` and `<out>/throughput.md` and prints the tables. The machine load
average is recorded before and after every section: on a shared CPU the numbers move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `models` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from torch import nn  # noqa: E402

import models.ensemble as ensemble_module  # noqa: E402
from benchmarks import report as report_tables  # noqa: E402
from benchmarks.report import markdown_table  # noqa: E402
from models.ensemble import (  # noqa: E402  (private helpers: the benchmark times train_group's own parts)
    RECORD_CHUNK,
    RECORD_CHUNK_CUDA,
    CompiledForward,
    _Data,
    _epoch_augment,
    _epoch_order,
    _forward,
    _prepare,
    _record,
    _rng_state,
    _save_checkpoint,
    augment_pad,
    autocast,
    resolve_batch_size,
    resolve_device,
    to_device,
    train_group,
)
from models.nets import build_ensemble  # noqa: E402
from models.spec import TrainSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VEC_TARGET = 10.0  # MLP: vectorised >= 10x one member after another (issue target, 2-core CPU)
CLI_TARGET_S = 20.0  # curate score digits, 16 members x 30 epochs, end to end
CLI_MEMBERS, CLI_EPOCHS = 16, 30
GPU_TRAIN_TARGET, GPU_RECORD_TARGET = 300_000, 600_000  # ensemble-images/s, H100/H200, N = 16, Jumpout on
GPU_JUMPOUT_OVERHEAD = 0.10
N_TAB, D_TAB, N_CLASSES = 50_000, 64, 10
CNN_PARAMS = 2_000_000
CNN_BATCH = 128
ROW_DEADLINE_S = 10.0  # most timed seconds per MLP row
CLI_TIMEOUT_S = 60.0  # a curate score run is stopped (its process group killed) after this
DEFAULTS = {  # per device type; the CPU ones keep the whole run near 8 minutes on 2 busy cores
    "cpu": {"mlp_steps": 20, "cnn_images": 2048, "cnn_steps": 2, "cnn_members": "8", "record_images": 256,
            "cnn_batch": 128, "variants": False},  # 4b on 2 cores: minutes a row at width 152
    "cuda": {"mlp_steps": 200, "cnn_images": 50_000, "cnn_steps": 20, "cnn_members": "8,16",
             "record_images": 50_000, "cnn_batch": 512, "variants": True},
}
console = Console(stderr=True)


# --- helpers -----------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_machine(device: torch.device) -> dict[str, object]:
    return {"command": " ".join(["python", *sys.argv]), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "device": str(device), "cuda_device": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "default_torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_start": load_average()}


class StepRunner:
    """One member group's training step, as in train_group's loop: per-member batches idx (M, B)."""

    def __init__(self, spec: TrainSpec, kind: str, data, members: list[int], x_shape: tuple[int, ...],
                 device: torch.device, batch_size: int, n_steps: int, fused: bool = False,
                 channels_last: bool | None = None, per_member_convs: bool | None = None) -> None:
        gen = torch.Generator(device=device).manual_seed(spec.random_state)
        draws = None if spec.compile != "off" else gen  # as train_group: compiled dropout draws in-graph
        net = build_ensemble(kind, members, x_shape, N_CLASSES, spec, draws, per_member_convs)  # type: ignore[arg-type]
        self.net = to_device(net, device, channels_last)  # None: as train_group
        extra = {"fused": True} if fused else {}
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=spec.learning_rate,
                                     weight_decay=spec.weight_decay, **extra)
        self.data, self.loss_fn = data, nn.CrossEntropyLoss(reduction="none")
        all_idx = [np.arange(len(data.y))] * len(members)
        order = _epoch_order(all_idx, members, spec.random_state, 1, batch_size, n_steps)
        self.order = torch.as_tensor(order, device=device)  # (n_steps, M, B)
        self.call = CompiledForward(self.net, spec.compile) if spec.compile != "off" else None
        self.amp = autocast(spec, device)
        self.pad, self.draws = 0, None
        if spec.augment != "none":  # as train_group: one (dy, dx, flip) per member and example, on the device
            self.pad = augment_pad(tuple(x_shape[1:]))  # type: ignore[arg-type]
            self.draws = torch.as_tensor(_epoch_augment(members, spec.random_state, 1, n_steps, batch_size, self.pad,
                                                        flip=spec.augment == "shift_flip"), device=device)

    def step(self, i: int) -> None:
        idx = self.order[i % len(self.order)]
        draws = None if self.draws is None else self.draws[i % len(self.order)]
        with self.amp:  # as train_group: bf16 autocast on CUDA, the loss in fp32
            logits = _forward(self.net, self.data, idx, draws, self.pad, self.call).float()
        loss = self.loss_fn(logits.flatten(0, 1), self.data.y[idx].flatten()).view(idx.shape).mean(dim=1).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def time_steps(runners: list[StepRunner], n_warmup: int, n_steps: int, device: torch.device,
               deadline_s: float = float("inf")) -> tuple[list[float], int, float]:
    """Wall seconds of each timed step of the runners (trained one after another), member-steps done
    and CPU seconds of this process over the timed steps (all its threads; spin-waits included).

    Stops early once the timed steps took deadline_s (oversubscribed threads can be 100x slower)."""
    times: list[float] = []
    member_steps, cpu = 0, 0.0
    for r in runners:
        for i in range(n_warmup):
            r.step(i)
        sync(device)
        for i in range(n_steps):
            t, c = time.perf_counter(), time.process_time()
            r.step(n_warmup + i)
            sync(device)
            times.append(time.perf_counter() - t)
            cpu += time.process_time() - c
            member_steps += r.net.n_members
            if sum(times) > deadline_s:
                return times, member_steps, cpu
    return times, member_steps, cpu


def section(name: str, fn: Callable[[], dict]) -> dict:
    console.print(f"[bold]{name}[/] (load average {load_average()})")
    before, t = load_average(), time.perf_counter()
    result = fn()
    result.update(load_average_before=before, load_average_after=load_average(),
                  section_seconds=round(time.perf_counter() - t, 1))
    console.print_json(json.dumps({name: result}, default=str))  # in the log even if a later section is cut off
    return result


# --- 1-3. MLP ----------------------------------------------------------------------------------


def tabular_data(n: int, device: torch.device, random_state: int = 0):
    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((n, D_TAB)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, n)
    return X, y, _prepare(X, y, "mlp", device)


def mlp_row(spec: TrainSpec, data, n_members: int, mode: str, threads: int, args, device, fused: bool = False) -> dict:
    torch.set_num_threads(threads)
    batch = resolve_batch_size(spec, N_TAB)
    groups = [list(range(n_members))] if mode == "vectorised" else [[m] for m in range(n_members)]
    runners = [StepRunner(spec, "mlp", data, g, (D_TAB,), device, batch, args.mlp_steps + 3, fused) for g in groups]
    times, member_steps, cpu = time_steps(runners, 2, args.mlp_steps, device, ROW_DEADLINE_S)
    total = sum(times)
    return {"threads": threads, "n_members": n_members, "mode": mode, "dropout": spec.dropout,
            "adamw": "fused" if fused else "default", "batch_size": batch, "timed_steps": len(times),
            "complete": member_steps == n_members * args.mlp_steps,
            "ms_per_step": round(1e3 * total * n_members / member_steps, 2),  # per step of all N members
            "ensemble_examples_per_s": round(member_steps * batch / total),
            "ensemble_examples_per_cpu_s": round(member_steps * batch / cpu), "load_average": load_average()}


def run_mlp_steps(args, device: torch.device) -> dict:
    _, _, data = tabular_data(N_TAB, device)
    rows = []
    for threads in args.threads:
        for n in args.members:
            for mode, fused in (("vectorised", False), ("sequential", False), ("vectorised", True)):
                rows.append(mlp_row(TrainSpec(device=str(device)), data, n, mode, threads, args, device, fused))
                console.print(rows[-1])
    for r in rows:
        if r["mode"] == "vectorised" and r["adamw"] == "default":
            seq = next(s for s in rows if s["mode"] == "sequential" and s["threads"] == r["threads"]
                       and s["n_members"] == r["n_members"])
            r["speedup_vs_sequential"] = round(r["ensemble_examples_per_s"] / seq["ensemble_examples_per_s"], 2)
            cpu_ratio = r["ensemble_examples_per_cpu_s"] / seq["ensemble_examples_per_cpu_s"]
            r["cpu_speedup_vs_sequential"] = round(cpu_ratio, 2)
    return {"method": "train_group's step body through build_ensemble (no record pass, no epoch setup)",
            "rows": rows}


def run_dropout(args, device: torch.device) -> dict:
    _, _, data = tabular_data(N_TAB, device)
    n, rows = max(args.members), []
    for threads in args.threads:
        for kind in ("none", "dropout", "jumpout"):
            rows.append(mlp_row(TrainSpec(device=str(device), dropout=kind), data, n, "vectorised", threads,
                                args, device))
            console.print(rows[-1])
    for r in rows:
        base = next(b for b in rows if b["dropout"] == "none" and b["threads"] == r["threads"])
        r["slowdown_vs_none"] = round(base["ensemble_examples_per_s"] / r["ensemble_examples_per_s"], 2)
    return {"rows": rows}


def run_compile(args, device: torch.device) -> dict:
    """torch.compile against eager for the largest MLP ensemble: the first step (compilation) and the
    steady step time, with and without Jumpout (whose random draws stay eager: one graph break per layer)."""
    _, _, data = tabular_data(N_TAB, device)
    n, rows = max(args.members), []
    torch.set_num_threads(args.threads[0])
    batch = resolve_batch_size(TrainSpec(), N_TAB)
    for dropout in ("none", "jumpout"):
        for mode in ("off", *args.compile_modes):
            spec = TrainSpec(device=str(device), dropout=dropout, compile=mode)
            runner = StepRunner(spec, "mlp", data, list(range(n)), (D_TAB,), device, batch, args.mlp_steps + 3)
            t = time.perf_counter()
            runner.step(0)  # compiles
            sync(device)
            first = time.perf_counter() - t
            times, _, _ = time_steps([runner], 2, args.mlp_steps, device, ROW_DEADLINE_S)
            fell_back = runner.call is not None and runner.call.compiled is None
            rows.append({"dropout": dropout, "compile": mode + (" (fell back to eager)" if fell_back else ""),
                         "threads": args.threads[0], "n_members": n, "first_step_s": round(first, 2),
                         "ms_per_step": round(1e3 * sum(times) / len(times), 2), "load_average": load_average()})
            console.print(rows[-1])
    for r in rows:
        base = next(b for b in rows if b["dropout"] == r["dropout"] and b["compile"] == "off")
        r["speedup_vs_eager"] = round(base["ms_per_step"] / r["ms_per_step"], 2)
    return {"rows": rows}


def group_epoch(X: np.ndarray, y: np.ndarray, spec: TrainSpec, members: list[int]) -> tuple[float, float]:
    """(record-pass seconds, train seconds) of one train_group epoch; setup excluded."""
    records = list(train_group(X, y, N_CLASSES, spec, members))
    return records[0].seconds, records[1].seconds - records[0].seconds


def run_mlp_epochs(args, device: torch.device) -> dict:
    torch.set_num_threads(args.threads[0])
    X, y, _ = tabular_data(N_TAB, device)
    n = max(args.members)
    spec = TrainSpec(n_members=n, n_epochs=1, device=str(device))
    rows = []
    for mode, groups in (("vectorised", [list(range(n))]), ("sequential", [[m] for m in range(n)])):
        rec, train = map(sum, zip(*(group_epoch(X, y, spec, g) for g in groups)))
        rows.append({"threads": args.threads[0], "n_members": n, "mode": mode, "train_seconds": round(train, 2),
                     "record_seconds": round(rec, 2),
                     "train_ensemble_examples_per_s": round(n * N_TAB / train),
                     "record_ensemble_examples_per_s": round(n * N_TAB / rec), "load_average": load_average()})
        console.print(rows[-1])
    rows[0]["train_speedup_vs_sequential"] = round(rows[1]["train_seconds"] / rows[0]["train_seconds"], 2)
    net = build_ensemble("mlp", list(range(n)), (D_TAB,), N_CLASSES, spec).to(device)
    what_if = record_cpu_ms(net, _prepare(X, y, "mlp", device), n, device)
    console.print(what_if)
    return {"method": "train_group, n_epochs=1: record = epoch-0 seconds, train = epoch-1 seconds - record",
            "rows": rows, "record_pass_what_if": what_if}


# --- 4. CNN ------------------------------------------------------------------------------------


def cnn_params(width: int) -> int:
    net = build_ensemble("cnn", [0], (3, 32, 32), N_CLASSES, TrainSpec(cnn_width=width))
    return sum(p.numel() for p in net.parameters())


def cnn_gflop(width: int) -> float:
    """Forward GFLOP per image and member (convolutions and head; 2 FLOP per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = build_ensemble("cnn", [0], (3, 32, 32), N_CLASSES, TrainSpec(cnn_width=width)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() / 1e9


def pick_cnn_width() -> tuple[int, list[dict]]:
    """The multiple of 8 whose parameter count per member is nearest 2M (152: 2.08M). Channels in
    multiples of 8 per member: on an H200, width 149 made cuDNN pad and transform every grouped
    convolution (nhwcAddPaddingKernel, tensorTransformGeneric: 48 % of a step's GPU time)."""
    width = min(range(128, 192, 8), key=lambda w: abs(cnn_params(w) - CNN_PARAMS))  # 2M lies in 1.5M..3.3M
    table = [{"cnn_width": w, "params_per_member": cnn_params(w), "forward_gflop_per_image": round(cnn_gflop(w), 3)}
             for w in sorted({32, 64, 96, 128, 149, width})]
    return width, table


def cnn_row(spec: TrainSpec, X: np.ndarray, y: np.ndarray, n: int, args, device) -> dict:
    data = _prepare(X, y, "cnn", device)
    runner = StepRunner(spec, "cnn", data, list(range(n)), X.shape[1:], device, CNN_BATCH, args.cnn_steps + 1)
    warm = StepRunner(spec, "cnn", data, list(range(n)), X.shape[1:], device, 16, 1)  # cheap first-call warm-up
    warm.step(0)
    per_step, _, cpu = time_steps([runner], 1 if device.type == "cuda" else 0, args.cnn_steps, device)
    row = {"n_members": n, "threads": torch.get_num_threads(), "batch_size": CNN_BATCH,
           "step_seconds": [round(s, 2) for s in per_step],
           "train_ensemble_images_per_s": round(n * CNN_BATCH * len(per_step) / sum(per_step), 1),
           "train_ensemble_images_per_cpu_s": round(n * CNN_BATCH * len(per_step) / cpu, 1)}
    # the same steps with on-device augmentation (augment=shift_flip): its cost over the plain step
    augmented = StepRunner(spec.model_copy(update={"augment": "shift_flip"}), "cnn", data, list(range(n)),
                           X.shape[1:], device, CNN_BATCH, args.cnn_steps + 1)
    aug_step, _, _ = time_steps([augmented], 1 if device.type == "cuda" else 0, args.cnn_steps, device)
    row["augment_step_seconds"] = [round(s, 2) for s in aug_step]
    row["augment_slowdown"] = round((sum(aug_step) / len(aug_step)) / (sum(per_step) / len(per_step)), 3)
    del augmented
    chunk = _prepare(X[: args.record_images], y[: args.record_images], "cnn", device)
    held = np.zeros((n, len(chunk.y)), dtype=bool)
    try:
        _record(runner.net, _prepare(X[:16], y[:16], "cnn", device), held[:, :16], N_CLASSES, 0, 0,
                list(range(n)), 0.0, 0.0)  # warm-up at a small size
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        _record(runner.net, chunk, held, N_CLASSES, 0, 1, list(range(n)), 0.0, t)
        sync(device)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        row.update(record_images=len(chunk.y), record_seconds=round(seconds, 2),
                   record_ensemble_images_per_s=round(n * len(chunk.y) / seconds, 1),
                   record_ensemble_images_per_cpu_s=round(n * len(chunk.y) / cpu, 1))
    except torch.OutOfMemoryError as exc:  # RECORD_CHUNK images x all members at once
        row.update(record_images=len(chunk.y),
                   record_error=f"out of memory at RECORD_CHUNK={RECORD_CHUNK}: {exc}"[:300])
    row["load_average"] = load_average()
    return row


def run_cnn(args, device: torch.device) -> dict:
    torch.set_num_threads(args.threads[0])
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as train_group
    width, widths = pick_cnn_width()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.cnn_images, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, N_CLASSES, args.cnn_images)
    spec = TrainSpec(model="cnn", cnn_width=width, batch_size=CNN_BATCH, device=str(device))
    rows = []
    for n in args.cnn_members:
        rows.append(cnn_row(spec, X, y, n, args, device))
        console.print(rows[-1])
    return {"cnn_width": width, "widths": widths, "n_images": args.cnn_images, "dropout": spec.dropout,
            "record_chunk": RECORD_CHUNK, "rows": rows}


def variant_configs(args, device: torch.device, width: int) -> list[dict]:
    """The rows of section 4b. On a GPU: the reference CNN at batch 512 (width 149, the first run's,
    against its multiple-of-8 neighbour), channels_last against NCHW, eager against the first compile
    mode; then the CNN a default `curate score` job trains (width 32, batch 256) under every compile
    mode. On the CPU: the reference CNN, dropout none / Jumpout, eager and compiled. cuDNN's benchmark
    mode is on, as in train_group (off measured the same, 134.27 ms a step, on the first H200 run)."""
    batch = args.cnn_batch
    row = dict(width=width, batch=batch, channels_last=device.type == "cuda", compile="off", dropout="jumpout",
               per_member=False)
    if device.type != "cuda":
        return [row | dict(dropout="none"), row, row | dict(per_member=True)] + [
            row | dict(compile=m, dropout=d) for m in args.compile_modes for d in ("none", "jumpout")]
    rows = [row | dict(width=149), row | dict(dropout="none"), row, row | dict(channels_last=False)]
    rows += [row | dict(compile=m, dropout=d) for m in args.compile_modes[:1] for d in ("none", "jumpout")]
    rows += [row | dict(per_member=True, dropout=d) for d in ("none", "jumpout")]
    rows += [row | dict(per_member=True, compile=m) for m in args.compile_modes[:1]]
    job = row | dict(width=32, batch=256)
    rows += [job | dict(dropout="none"), job, job | dict(channels_last=False), job | dict(per_member=True)]
    rows += [job | dict(compile=m) for m in args.compile_modes]
    return rows


def run_cnn_variants(args, device: torch.device) -> dict:
    """Training steps at the largest N for each of `variant_configs` (first step = compilation;
    Jumpout's draws are in-graph when compiled), the record pass by chunk size (and compiled with
    --record-compile), and torch.profiler tables of the reference and the job-sized Jumpout steps."""
    torch.set_num_threads(args.threads[0])
    width, _ = pick_cnn_width()
    n = max(args.cnn_members)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (args.cnn_images, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, N_CLASSES, args.cnn_images)
    data = _prepare(X, y, "cnn", device)
    rows, runners = [], {}
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as train_group
    for cfg in variant_configs(args, device, width):
        spec = TrainSpec(model="cnn", cnn_width=cfg["width"], batch_size=cfg["batch"], device=str(device),
                         dropout=cfg["dropout"], compile=cfg["compile"])
        runner = StepRunner(spec, "cnn", data, list(range(n)), X.shape[1:], device, cfg["batch"], args.cnn_steps + 4,
                            channels_last=cfg["channels_last"], per_member_convs=cfg["per_member"])
        t = time.perf_counter()
        runner.step(0)
        sync(device)
        first = time.perf_counter() - t
        per_step, _, _ = time_steps([runner], 2, args.cnn_steps, device)
        fell_back = runner.call is not None and runner.call.compiled is None
        step = statistics.median(per_step)
        rows.append(cfg | {"n_members": n, "compile": cfg["compile"] + (" (fell back to eager)" if fell_back else ""),
                           "first_step_s": round(first, 2), "median_step_ms": round(1e3 * step, 2),
                           "train_ensemble_images_per_s": round(n * cfg["batch"] / step)})
        console.print(rows[-1])
        runners[tuple(cfg.values())] = runner
        if device.type == "cuda":
            torch.cuda.empty_cache()
    same = ("width", "batch", "channels_last", "compile", "per_member")
    for r in rows:
        base = next((b for b in rows if b["dropout"] == "none" and all(b[k] == r[k] for k in same)), None)
        r["jumpout_overhead"] = round(r["median_step_ms"] / base["median_step_ms"] - 1, 3) if base else None
    profiles = {}
    for w in sorted({width, 32}, reverse=True):  # the fastest Jumpout step of each width
        candidates = [r for r in rows if r["dropout"] == "jumpout" and r["width"] == w]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r["train_ensemble_images_per_s"])
        key = (best["width"], best["batch"], best["channels_last"], best["compile"].split(" ")[0], "jumpout",
               best["per_member"])
        label = (f"width {w}, batch {best['batch']}, compile {best['compile']}, "
                 f"{'channels_last' if best['channels_last'] else 'NCHW'}, "
                 f"{'per-member' if best['per_member'] else 'grouped'} convolutions, jumpout")
        profiles[label] = cnn_step_profile(runners[key], device) if device.type == "cuda" else []
    ref = next(r for key, r in runners.items() if key[0] == width and key[3] == "off" and key[4] == "jumpout"
               and not key[5])
    record = record_rows(ref.net, data, n, args, device)
    if device.type == "cuda":  # where the record pass's time goes: 8,192 images, eager, at RECORD_CHUNK_CUDA
        sub = _Data(data.X[:8192], data.y[:8192], data.mean, data.std)
        held = np.zeros((n, len(sub.y)), dtype=bool)
        amp = autocast(TrainSpec(device=str(device)), device)
        try:  # never lose the section's rows to a profiler failure
            profiles[f"record pass, width {width}, eager, 8,192 images a call"] = kernel_profile(
                lambda i: _record(ref.net, sub, held, N_CLASSES, 0, i, list(range(n)), 0.0, 0.0, amp), device)
        except Exception as exc:  # noqa: BLE001
            console.print(f"record-pass profile failed: {type(exc).__name__}: {exc}")
    return {"cnn_width": width, "n_images": args.cnn_images, "rows": rows, "record_rows": record,
            "profiles": profiles, "precision": "bf16 autocast" if device.type == "cuda" else "fp32"}


def record_rows(net: nn.Module, data, n: int, args, device: torch.device) -> list[dict]:
    """The record pass (`_record`, all members on all images) at chunk sizes around RECORD_CHUNK_CUDA,
    eager, and compiled at RECORD_CHUNK_CUDA with --record-compile."""
    spec = TrainSpec(device=str(device))
    default = ensemble_module.RECORD_CHUNK_CUDA if device.type == "cuda" else ensemble_module.RECORD_CHUNK
    chunks = sorted({default // 4, default, default * 2}) if device.type == "cuda" else [default]
    rows_per_pass = max(64, max(chunks) // n)  # whole passes only: no smaller last chunk to compile again
    images = min(len(data.y), max(rows_per_pass, min(args.record_images, len(data.y)) // rows_per_pass * rows_per_pass))
    sub = _Data(data.X[:images], data.y[:images], data.mean, data.std)
    held = np.zeros((n, images), dtype=bool)
    calls = [("off", None)] + [(m, torch.compile(net, mode=m)) for m in args.compile_modes if args.record_compile]
    rows = []
    for mode, call in calls:
        for chunk in chunks if call is None else [default]:  # compiled: one chunk size (each compiles anew)
            ensemble_module.RECORD_CHUNK_CUDA = ensemble_module.RECORD_CHUNK = chunk
            try:
                for _ in range(2):  # the first pass compiles (one shape per chunk size and the last chunk)
                    _record(net, sub, held, N_CLASSES, 0, 0, list(range(n)), 0.0, 0.0, autocast(spec, device), call)
                sync(device)
                t = time.perf_counter()
                _record(net, sub, held, N_CLASSES, 0, 1, list(range(n)), 0.0, t, autocast(spec, device), call)
                sync(device)
                seconds = time.perf_counter() - t
                rows.append({"compile": mode, "chunk_member_images": chunk, "images": images,
                             "seconds": round(seconds, 3), "record_ensemble_images_per_s": round(n * images / seconds)})
            except torch.OutOfMemoryError as exc:
                rows.append({"compile": mode, "chunk_member_images": chunk, "images": images,
                             "error": f"out of memory: {exc}"[:200]})
            finally:
                ensemble_module.RECORD_CHUNK_CUDA, ensemble_module.RECORD_CHUNK = RECORD_CHUNK_CUDA, RECORD_CHUNK
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            console.print(rows[-1])
    return rows


def cnn_step_profile(runner: StepRunner, device: torch.device, top: int = 15) -> list[dict]:
    """CUDA time by kernel over 3 training steps (torch.profiler), the `top` largest."""
    return kernel_profile(runner.step, device, top)


def kernel_profile(fn: Callable[[int], object], device: torch.device, top: int = 15) -> list[dict]:
    """CUDA time by kernel over 3 calls fn(0), fn(1), fn(2) (torch.profiler), the `top` largest;
    "ms_per_step" is per call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(3):
            fn(i)
        sync(device)
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0 and e.device_type.name == "CUDA"]
    total = sum(e.device_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.device_time_total, reverse=True)
    return [{"kernel": e.key[:90], "calls": e.count, "ms_per_step": round(e.device_time_total / 3e3, 3),
             "share": round(e.device_time_total / total, 3)} for e in events[:top]]


# --- 5. curate score end to end ----------------------------------------------------------------


def write_digits(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    path = folder / "digits.npz"
    np.savez(path, X=X.astype(np.float32), y=y)
    return path, X.astype(np.float32), y.astype(np.int64)


def cli_command(npz: Path, data_dir: Path, adaboost: bool, device: str) -> list[str]:
    return [str(ROOT / ".venv/bin/curate"), "score", str(npz), "--members", str(CLI_MEMBERS), "--epochs",
            str(CLI_EPOCHS), "--adaboost" if adaboost else "--no-adaboost", "--device", device,
            "--data-dir", str(data_dir)]


def time_cli(npz: Path, tmp: Path, threads: int, adaboost: bool, device: str) -> dict:
    data_dir = Path(tempfile.mkdtemp(dir=tmp))
    env = {**os.environ, "CURATE_TORCH_THREADS": str(threads)}
    before, t = load_average(), time.perf_counter()
    proc = subprocess.Popen(cli_command(npz, data_dir, adaboost, device), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    meter = SessionCpu(proc.pid)  # the CLI, its fork server and the workers forked from it
    try:
        _, stderr = proc.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # the CLI, its fork server and workers share the session's group
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
    seconds, cpu = time.perf_counter() - t, meter.stop()
    ok = proc.returncode == 0  # a killed run's worker is not ours to wait for: its CPU time is not counted
    return {"threads": threads, "adaboost": adaboost, "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1) if ok else None,
            "returncode": proc.returncode,
            "timed_out": seconds >= CLI_TIMEOUT_S, "meets_target": ok and seconds <= CLI_TARGET_S,
            "stderr_tail": stderr[-300:], "load_average_before": before, "load_average_after": load_average()}


class SessionCpu:
    """User + system CPU seconds of every process in a session, sampled from /proc every 0.1 s.

    Workers are forked by the CLI's fork server, which is not waited for by the CLI, so
    RUSAGE_CHILDREN misses them; the session (start_new_session) holds them all. A process is
    counted at its last sample: at most 0.1 s of each one's CPU time is lost."""

    def __init__(self, session_id: int, period_s: float = 0.1) -> None:
        self.session_id, self.period_s = session_id, period_s
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[3]) == self.session_id:  # field 6 of stat: session id
                    self.seen[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            self._stop.wait(self.period_s)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def time_import(module: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=ROOT)
    return round(time.perf_counter() - t, 2)


def digits_parts(X: np.ndarray, y: np.ndarray, device: torch.device, threads: int) -> dict:
    """The CLI job's training alone (train_group in this process), and its parts: one training step
    (default and fused AdamW), the AdamW step, the record pass (RECORD_CHUNK as is and // N), a checkpoint."""
    torch.set_num_threads(threads)
    spec = TrainSpec(n_members=CLI_MEMBERS, n_epochs=CLI_EPOCHS, device=str(device))
    members = list(range(CLI_MEMBERS))
    t, c = time.perf_counter(), time.process_time()
    records = list(train_group(X, y, N_CLASSES, spec, members))
    out: dict[str, object] = {"threads": threads, "train_group_seconds": round(time.perf_counter() - t, 2),
                              "train_group_cpu_seconds": round(time.process_time() - c, 2),
                              "record_pass_seconds_epoch0": round(records[0].seconds, 3)}
    data = _prepare(X, y, "mlp", device)
    batch = resolve_batch_size(spec, len(y))
    n_steps = int(np.ceil(len(y) / batch))
    out.update(steps=n_steps * CLI_EPOCHS, batch_size=batch)
    for fused in (False, True):
        runner = StepRunner(spec, "mlp", data, members, (64,), device, batch, n_steps, fused)
        _, done, cpu = time_steps([runner], 3, 30, device)
        out[f"cpu_ms_per_step_{'fused' if fused else 'default'}_adamw"] = round(1e3 * cpu * CLI_MEMBERS / done, 2)
    out.update(record_cpu_ms(runner.net, data, CLI_MEMBERS, device))
    with tempfile.TemporaryDirectory() as ckpt:
        gen = torch.Generator(device=device)
        ms = statistics.median(_timed(lambda: _save_checkpoint(Path(ckpt), 1, runner.net, runner.opt, _rng_state(gen, device)), 5, device))
        out["ms_checkpoint_save"] = round(1e3 * ms, 1)
    for p in runner.net.parameters():
        p.grad = torch.randn_like(p)
    for kind in ("default", "foreach", "fused"):
        opt = torch.optim.AdamW(runner.net.parameters(), **({kind: True} if kind != "default" else {}))
        cpu = statistics.median(_timed(opt.step, 30, device, cpu=True))
        out[f"cpu_ms_adamw_step_{kind}"] = round(1e3 * cpu, 2)
    return out


def record_cpu_ms(net: nn.Module, data, n_members: int, device: torch.device) -> dict[str, float]:
    """CPU ms of one record pass over data with RECORD_CHUNK as is, and (what-if) RECORD_CHUNK // N."""
    held = np.zeros((n_members, len(data.y)), dtype=bool)
    out = {}
    for chunk in (RECORD_CHUNK, max(RECORD_CHUNK // n_members, 64)):
        ensemble_module.RECORD_CHUNK = chunk  # _record reads the module constant at call time
        try:
            fn = partial(_record, net, data, held, N_CLASSES, 0, 0, list(range(n_members)), 0.0, 0.0)
            out[f"record_cpu_ms_chunk_{chunk}"] = round(1e3 * statistics.median(_timed(fn, 2, device, cpu=True)), 1)
        finally:
            ensemble_module.RECORD_CHUNK = RECORD_CHUNK
    return out


def _timed(fn: Callable[[], object], n: int, device: torch.device, cpu: bool = False) -> list[float]:
    """Wall (or this process's CPU) seconds of n calls after one warm-up call."""
    clock = time.process_time if cpu else time.perf_counter
    fn()
    times = []
    for _ in range(n):
        t = clock()
        fn()
        sync(device)
        times.append(clock() - t)
    return times


def py_spy_path() -> str | None:
    """py-spy beside this interpreter (a venv's bin), else on PATH; None when neither has it."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_cli(npz: Path, tmp: Path, threads: int, device: str) -> dict:
    """py-spy over one job (all processes); samples summed by category, in seconds of samples."""
    raw, rate = tmp / "profile.txt", 50
    cmd = [py_spy_path() or "py-spy", "record", "--subprocesses", "--nonblocking", "--rate", str(rate),
           "--format", "raw", "-o", str(raw), "--", *cli_command(npz, Path(tempfile.mkdtemp(dir=tmp)), False, device)]
    subprocess.run(cmd, env={**os.environ, "CURATE_TORCH_THREADS": str(threads)}, capture_output=True, cwd=ROOT)
    totals: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        totals[categorise(stack)] += int(count) / rate
    return {"threads": threads, "seconds_by_category": {k: round(v, 2) for k, v in totals.most_common()}}


CATEGORIES = [  # first match wins; py-spy raw stacks, outermost frame first
    ("_compile_bytecode", "import: compiling .py (no .pyc; PYTHONDONTWRITEBYTECODE)"),
    ("_find_and_load", "import"),
    ("models/attribution", "explain: attributions (after training)"), ("service/explain", "explain: other"),
    ("_save_checkpoint", "train_group: checkpoint save"),
    ("_record (models", "train_group: record pass"), ("adam", "train_group: AdamW step"),
    ("backward (", "train_group: backward"), ("Jumpout.forward", "train_group: Jumpout forward"),
    ("forward (models/nets", "train_group: forward"), ("cross_entropy", "train_group: loss"),
    ("_Data.batch", "train_group: X[idx] indexing"), ("_epoch_order", "train_group: epoch order"),
    ("train_group", "train_group: other (Python per step)"), ("runner.py", "engine: commit epoch"),
    ("store.py", "engine: DuckDB"), ("scoring/", "scoring"), ("finalize", "scoring"),
    ("ingest", "ingest"), ("datasets.py", "ingest"), ("wait_with_progress", "CLI: progress loop"),
]


PROCESS_LABEL = re.compile(r'process \d+:"[^"]*"')


def categorise(stack: str) -> str:
    frames = PROCESS_LABEL.sub("", stack).strip(";")  # child stacks carry the parent's label and their own
    # "worker" = any child of the CLI: the fork server (which imports torch and the model code once)
    # and the workers forked from it
    where = "worker" if len(PROCESS_LABEL.findall(stack)) > 1 else "CLI"
    if not frames:
        return f"no Python frame (process start-up, native code) ({where})"
    if where == "worker" and "<module> (curate:" in frames:  # the fork server preloads the parent's __main__
        return "import (worker): the curate script again (fork server's __main__ preload)"
    for needle, name in CATEGORIES:
        if needle in frames:
            return f"{name} ({where})" if name.startswith("import") else name
    return "other: " + frames.rsplit(";", 1)[-1].strip()[:60]


def run_cli(args, device: torch.device) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="curate-throughput-"))
    npz, X, y = write_digits(tmp)
    rows = []
    for threads in args.threads:
        for adaboost in (False, True):
            rows.append(time_cli(npz, tmp, threads, adaboost, args.device))
            console.print(rows[-1])
    parts = {"import_service_cli_seconds": time_import("service.cli.main"),
             "import_torch_models_ensemble_seconds": time_import("models.ensemble"),
             "in_process": digits_parts(X, y, device, args.threads[0])}
    console.print(parts)
    result = {"job": f"digits 1797 x 64, {CLI_MEMBERS} members x {CLI_EPOCHS} epochs", "rows": rows,
              "parts": parts}
    if args.profile:
        result["profile"] = profile_cli(npz, tmp, args.threads[0], args.device)
        console.print(result["profile"])
    return result


# --- report ------------------------------------------------------------------------------------


def verdicts(report: dict) -> list[dict]:
    """met: True / False, or None where the row ran oversubscribed (threads > 1 while the load
    average exceeded the core count: OpenMP barriers then wait on descheduled threads)."""
    cores = os.cpu_count() or 1

    def status(met: bool, threads: int, load: float) -> bool | None:
        return None if threads > 1 and load > cores else met

    out = []
    for r in report.get("mlp_steps", {}).get("rows", []):
        if "speedup_vs_sequential" in r:
            out.append({"target": f"MLP vectorised >= {VEC_TARGET:g}x one member after another "
                                  f"(N={r['n_members']}, {r['threads']} thread(s), steps)",
                        "shown": f"{r['speedup_vs_sequential']}x wall, "
                                 f"{r['cpu_speedup_vs_sequential']}x per CPU-second, load {r['load_average'][0]}",
                        "met": status(r["speedup_vs_sequential"] >= VEC_TARGET, r["threads"], r["load_average"][0])})
    for r in report.get("mlp_epochs", {}).get("rows", []):
        if "train_speedup_vs_sequential" in r:
            out.append({"target": f"MLP vectorised >= {VEC_TARGET:g}x (N={r['n_members']}, {r['threads']} thread(s), "
                                  "train_group epoch)",
                        "shown": f"{r['train_speedup_vs_sequential']}x, load {r['load_average'][0]}",
                        "met": status(r["train_speedup_vs_sequential"] >= VEC_TARGET, r["threads"],
                                      r["load_average"][0])})
    variants = report.get("cnn_variants")
    if variants and report["machine"]["cuda_device"]:
        jump = [r for r in variants["rows"] if r["dropout"] == "jumpout" and r["n_members"] >= 16
                and r.get("cudnn_benchmark", True) and r["width"] == variants["cnn_width"]]  # either convolutions
        jump = [r for r in jump if r["jumpout_overhead"] is not None]  # rows with a dropout-none twin
        if jump:
            best = max(jump, key=lambda r: r["train_ensemble_images_per_s"])
            out.append({"target": f"GPU training >= {GPU_TRAIN_TARGET:,} ensemble-images/s with Jumpout at N=16",
                        "shown": f"{best['train_ensemble_images_per_s']:,} (compile {best['compile']}, "
                                 f"N={best['n_members']}, batch {best['batch']}, width {best['width']})",
                        "met": best["train_ensemble_images_per_s"] >= GPU_TRAIN_TARGET})
            out.append({"target": f"Jumpout overhead <= {GPU_JUMPOUT_OVERHEAD:.0%} (same compile mode)",
                        "shown": f"{best['jumpout_overhead']:+.1%} in the fastest Jumpout variant; all: "
                                 + ", ".join(f"{r['compile']} {r['jumpout_overhead']:+.1%}" for r in jump),
                        "met": best["jumpout_overhead"] <= GPU_JUMPOUT_OVERHEAD})
        done = [r for r in variants["record_rows"] if "record_ensemble_images_per_s" in r]
        if done:
            best = max(done, key=lambda r: r["record_ensemble_images_per_s"])
            out.append({"target": f"GPU record pass >= {GPU_RECORD_TARGET:,} ensemble-images/s",
                        "shown": f"{best['record_ensemble_images_per_s']:,} (compile {best['compile']}, chunk "
                                 f"{best['chunk_member_images']:,} member-images)",
                        "met": best["record_ensemble_images_per_s"] >= GPU_RECORD_TARGET})
    for r in report.get("cli", {}).get("rows", []):
        cpu = f"{r['cpu_seconds']} CPU s" if r["cpu_seconds"] is not None else "CPU s n/a"
        out.append({"target": f"curate score digits {CLI_MEMBERS}x{CLI_EPOCHS} <= {CLI_TARGET_S:g} s "
                              f"(CURATE_TORCH_THREADS={r['threads']}, AdaBoost {'on' if r['adaboost'] else 'off'})",
                    "shown": f"{r['seconds']} s{' (stopped)' if r['timed_out'] else ''}, {cpu}, "
                             f"load {r['load_average_before'][0]}",
                    "met": status(r["meets_target"], r["threads"], r["load_average_before"][0])})
    return out


NOTES = """How to read: `ens-ex/s` is ensemble-examples (examples x members) per wall second; `per CPU-s` divides
by this process's CPU seconds instead, which moves less with other jobs on the machine (with 1 thread
it approximates wall time on an idle core; with 2 threads it includes OpenMP spin-waits). A
`(partial)` row hit the per-row time limit and is rated on the steps it finished; a `(stopped)` CLI
run was killed at the time limit. Rows with 2 threads while the load average exceeds the core count
measure OpenMP oversubscription (barriers waiting on descheduled threads), not the code."""
VERDICT = {True: "met", False: "missed", None: "not meaningful (oversubscribed)"}


def tables(report: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table, shared by the terminal and the markdown file."""
    out = []
    mlp = report.get("mlp_steps", {}).get("rows", [])
    if mlp:
        out.append(("MLP training steps, 50,000 x 64, batch 256 (" + report["mlp_steps"]["method"] + ")",
                    ["threads", "N", "mode", "AdamW", "ms/step", "ens-ex/s", "speed-up", "ens-ex/CPU-s", "CPU speed-up",
                     "load"],
                    [[str(r["threads"]), str(r["n_members"]), r["mode"] + ("" if r["complete"] else " (partial)"),
                      r["adamw"], f"{r['ms_per_step']:.1f}", f"{r['ensemble_examples_per_s']:,}",
                      str(r.get("speedup_vs_sequential", "")), f"{r['ensemble_examples_per_cpu_s']:,}",
                      str(r.get("cpu_speedup_vs_sequential", "")), str(r["load_average"][0])] for r in mlp]))
    if "dropout" in report:
        out.append(("Dropout overhead (vectorised, largest N)",
                    ["threads", "N", "dropout", "ms/step", "ens-ex/s", "slow-down vs none", "ens-ex/CPU-s", "load"],
                    [[str(r["threads"]), str(r["n_members"]), r["dropout"] + ("" if r["complete"] else " (partial)"),
                      f"{r['ms_per_step']:.1f}",
                      f"{r['ensemble_examples_per_s']:,}", f"{r['slowdown_vs_none']}x",
                      f"{r['ensemble_examples_per_cpu_s']:,}", str(r["load_average"][0])]
                     for r in report["dropout"]["rows"]]))
    if "compile" in report:
        out.append((f"torch.compile vs eager, MLP steps, N={report['compile']['rows'][0]['n_members']}",
                    ["dropout", "compile", "threads", "first step s", "ms/step", "speed-up vs eager", "load"],
                    [[r["dropout"], r["compile"], str(r["threads"]), str(r["first_step_s"]), str(r["ms_per_step"]),
                      f"{r['speedup_vs_eager']}x", str(r["load_average"][0])] for r in report["compile"]["rows"]]))
    if "mlp_epochs" in report:
        out.append(("MLP epoch through train_group (" + report["mlp_epochs"]["method"] + ")",
                    ["threads", "N", "mode", "train s", "record s", "train ens-ex/s", "record ens-ex/s", "speed-up",
                     "load"],
                    [[str(r["threads"]), str(r["n_members"]), r["mode"], str(r["train_seconds"]),
                      str(r["record_seconds"]), f"{r['train_ensemble_examples_per_s']:,}",
                      f"{r['record_ensemble_examples_per_s']:,}", str(r.get("train_speedup_vs_sequential", "")),
                      str(r["load_average"][0])] for r in report["mlp_epochs"]["rows"]]))
        out.append(("MLP record pass, CPU ms, RECORD_CHUNK as is vs // N (what-if)", ["setting", "CPU ms"],
                    [[k, str(v)] for k, v in report["mlp_epochs"]["record_pass_what_if"].items()]))
    if "cnn" in report:
        cnn = report["cnn"]
        out.append(("CNN widths (params and forward GFLOP per member and image)",
                    ["cnn_width", "params", "GFLOP fwd"],
                    [[str(w["cnn_width"]) + (" (used)" if w["cnn_width"] == cnn["cnn_width"] else ""),
                      f"{w['params_per_member']:,}", str(w["forward_gflop_per_image"])] for w in cnn["widths"]]))
        out.append((f"CNN 3x32x32, width {cnn['cnn_width']}, {cnn['n_images']:,} synthetic images, {cnn['dropout']}",
                    ["threads", "N", "batch", "step s", "train ens-img/s", "per CPU-s", "shift_flip step s",
                     "augment slow-down", "record imgs", "record ens-img/s", "per CPU-s", "load"],
                    [[str(r["threads"]), str(r["n_members"]), str(r["batch_size"]),
                      ", ".join(map(str, r["step_seconds"])), str(r["train_ensemble_images_per_s"]),
                      str(r["train_ensemble_images_per_cpu_s"]),
                      ", ".join(map(str, r.get("augment_step_seconds", []))), f"{r.get('augment_slowdown', '')}x",
                      str(r["record_images"]),
                      str(r.get("record_ensemble_images_per_s", r.get("record_error"))),
                      str(r.get("record_ensemble_images_per_cpu_s", "")), str(r["load_average"][0])]
                     for r in cnn["rows"]]))
    if "cnn_variants" in report:
        v = report["cnn_variants"]
        out.append((f"CNN variants, N = {v['rows'][0]['n_members']}, {v['precision']}, {v['n_images']:,} synthetic "
                    f"images (width {v['cnn_width']}: ~2M parameters a member; 32: the default job's)",
                    ["width", "batch", "layout", "convolutions", "dropout", "compile", "first step s",
                     "median step ms", "train ens-img/s", "Jumpout overhead"],
                    [[str(r["width"]), str(r["batch"]), "channels_last" if r["channels_last"] else "NCHW",
                      "per member" if r.get("per_member") else "grouped", r["dropout"], r["compile"],
                      str(r["first_step_s"]),
                      str(r["median_step_ms"]), f"{r['train_ensemble_images_per_s']:,}",
                      f"{r['jumpout_overhead']:+.1%}" if r["jumpout_overhead"] is not None and r["dropout"] == "jumpout"
                      else ""] for r in v["rows"]]))
        out.append(("CNN record pass (all members on all images, eval, one pass)",
                    ["compile", "chunk (member-images)", "images", "seconds", "record ens-img/s"],
                    [[r["compile"], f"{r['chunk_member_images']:,}", f"{r['images']:,}", str(r.get("seconds", "")),
                      f"{r['record_ensemble_images_per_s']:,}" if "record_ensemble_images_per_s" in r
                      else r.get("error", "")] for r in v["record_rows"]]))
        for label, profile in v.get("profiles", {}).items():
            out.append((f"Where the GPU time goes ({label}; torch.profiler, top kernels)",
                        ["kernel", "calls / 3 calls", "ms a call", "share"],
                        [[r["kernel"], str(r["calls"]), str(r["ms_per_step"]), f"{r['share']:.1%}"] for r in profile]))
    if "cli" in report:
        out.append((f"curate score end to end: {report['cli']['job']}",
                    ["CURATE_TORCH_THREADS", "AdaBoost", "seconds", "CPU s (all processes)", f"<= {CLI_TARGET_S:g} s",
                     "load before", "rc"],
                    [[str(r["threads"]), "on" if r["adaboost"] else "off",
                      str(r["seconds"]) + (" (stopped)" if r["timed_out"] else ""),
                      "n/a" if r["cpu_seconds"] is None else str(r["cpu_seconds"]),
                      "yes" if r["meets_target"] else "no", str(r["load_average_before"][0]), str(r["returncode"])]
                     for r in report["cli"]["rows"]]))
        parts = report["cli"]["parts"]
        flat = {k: v for k, v in parts.items() if k != "in_process"} | parts["in_process"]
        out.append(("Parts of the job, measured alone", ["part", "value"], [[k, str(v)] for k, v in flat.items()]))
        if "profile" in report["cli"]:
            prof = list(report["cli"]["profile"]["seconds_by_category"].items())
            rest = [(f"rest ({len(prof[15:])} more categories)", round(sum(v for _, v in prof[15:]), 2))]
            out.append(("py-spy samples of one job (seconds, all processes)", ["category", "s"],
                        [[k, str(v)] for k, v in prof[:15] + (rest if prof[15:] else [])]))
    return out


def print_tables(report: dict) -> None:
    report_tables.print_tables(Console(), tables(report))
    for v in report["verdicts"]:
        Console().print(f"{VERDICT[v['met']].upper()} {v['target']}: {v['shown']}", highlight=False, markup=False)


def save_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    machine = report["machine"]
    lines = ["# Throughput benchmark", "", f"Command: `{machine['command']}`", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command"), "",
             f"Threads per row in the tables; load average (1 min) next to every timing. "
             f"Total wall time {report['total_seconds']:.0f} s.", ""]
    for title, header, rows in tables(report):
        lines += [f"## {title}", "", markdown_table(header, rows), ""]
    lines += ["## Targets", ""] + [f"- **{VERDICT[v['met']]}** {v['target']}: {v['shown']}" for v in report["verdicts"]]
    lines += ["", NOTES]
    (out / "throughput.md").write_text("\n".join(lines) + "\n")


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", default="1,2", help="torch CPU thread counts to compare (first: epochs, CNN)")
    p.add_argument("--members", default="8,16", help="ensemble sizes N of the MLP sections")
    p.add_argument("--mlp-steps", type=int, help="timed MLP steps per row (default by device)")
    p.add_argument("--cnn-members", help="ensemble sizes of the CNN section (default: cpu 8, cuda 8,16)")
    p.add_argument("--cnn-images", type=int, help="synthetic CIFAR-shaped images (default: cpu 2048, cuda 50000)")
    p.add_argument("--cnn-steps", type=int, help="timed CNN steps (default: cpu 2, cuda 20)")
    p.add_argument("--cnn-batch", type=int, help="batch of the CNN variants section (default: cpu 128, cuda 512)")
    p.add_argument("--variants", action=argparse.BooleanOptionalAction, default=None,
                   help="the CNN variants section 4b (default: on with CUDA, off on the CPU)")
    p.add_argument("--skip-cnn-basic", action="store_true", help="skip section 4 (4b still runs)")
    p.add_argument("--record-compile", action="store_true", help="also time the record pass compiled (4b)")
    p.add_argument("--record-images", type=int, help="images of the CNN record pass (default: cpu 256, cuda all)")
    p.add_argument("--compile", default="default", help="torch.compile modes to time against eager, comma-separated "
                   "(default, reduce-overhead); empty to skip")
    p.add_argument("--skip-mlp", action="store_true", help="skip the MLP sections (1-3)")
    p.add_argument("--skip-cnn", action="store_true")
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--skip-epochs", action="store_true", help="skip the train_group epoch section")
    p.add_argument("--profile", action="store_true", help="also run one curate score job under py-spy")
    p.add_argument("--quick", action="store_true", help="smoke run: N=2,4, tiny CNN, no CLI")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    if args.profile and py_spy_path() is None:  # refused now, not after minutes of the other sections
        p.error("--profile needs py-spy: pip install py-spy")
    device = resolve_device(args.device)
    for key, value in DEFAULTS["cuda" if device.type == "cuda" else "cpu"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        args.members, args.mlp_steps, args.cnn_members, args.cnn_images = "2,4", 3, "2", 256
        args.cnn_steps, args.record_images, args.skip_cli, args.cnn_batch = 1, 32, True, 16
    args.compile_modes = [m for m in args.compile.split(",") if m]
    args.threads = [int(t) for t in str(args.threads).split(",")]
    args.members = [int(n) for n in str(args.members).split(",")]
    args.cnn_members = [int(n) for n in str(args.cnn_members).split(",")]
    args.record_images = min(args.record_images, args.cnn_images)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    started = time.perf_counter()
    report: dict = {"machine": describe_machine(device), "quick": args.quick}
    if not args.skip_mlp:
        report["mlp_steps"] = section("1. MLP steps", lambda: run_mlp_steps(args, device))
        report["dropout"] = section("2. dropout overhead", lambda: run_dropout(args, device))
    if args.compile_modes and not args.skip_mlp:
        report["compile"] = section("2b. torch.compile", lambda: run_compile(args, device))
    if not args.skip_epochs and not args.skip_mlp:
        report["mlp_epochs"] = section("3. MLP epochs via train_group", lambda: run_mlp_epochs(args, device))
    if not args.skip_cnn and not args.skip_cnn_basic:
        report["cnn"] = section("4. CNN", lambda: run_cnn(args, device))
    if not args.skip_cnn and args.variants:
        report["cnn_variants"] = section("4b. CNN variants", lambda: run_cnn_variants(args, device))
    if not args.skip_cli:
        report["cli"] = section("5. curate score end to end", lambda: run_cli(args, device))
    report["verdicts"] = verdicts(report)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["load_average_at_end"] = load_average()
    print_tables(report)
    save_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
