"""RayExecutor: run each member group as one Ray task, streaming one EpochRecord per epoch.

Same contract as LocalExecutor (`run(tasks, on_records, should_stop) -> bool`, raise WorkerFailed).
`ray` is imported lazily, so the service imports without it (`pip install 'curate[ray]'`).

Per job: the driver (the engine process) loads X.npy / y.npy once and `ray.put`s them; every task
gets the two refs. Each task is a Ray generator task (`num_returns="streaming"`) that first
yields a `TaskStarted` marker, then the records of `models.worker.iter_task_records`, which writes
the group's checkpoint before each yield. The driver waits on the generators of all running
tasks and hands each record to `on_records` in its own thread, in epoch order per task; workers
never touch DuckDB. Tasks are never retried by Ray (a re-run generator could repeat or reorder epochs): a
worker exception or a dead node is raised as WorkerFailed; every epoch received before it is
committed, and its checkpoint is there for a resumed attempt.

Where Ray runs: `address=None` starts a private local Ray instance (`address="local"`) unless the
`RAY_ADDRESS` environment variable names a cluster; `address="auto"` attaches to the cluster
started with `ray start` on this machine, `"HEAD_IP:6379"` to a remote one. A plain `ray.init()`
would attach silently to any cluster running here, so None never means that. If Ray is already
initialised in this process (one connection per process), the executor uses that connection and
`shutdown()` leaves it alone.

Checkpoints: each task writes to its `checkpoint_dir`, which the engine puts under its data
directory (`<data_dir>/jobs/<job_id>/<model>-group-<g>/ckpt`). On a cluster of several machines a
resumed group may land on another node, so that directory must be on storage every node sees:
either put the engine's data directory on shared storage (NFS, a mounted bucket) at the same path
on every node, or pass `shared_dir` (a path mounted on every node, driver included), under which
checkpoints go to `<shared_dir>/jobs/<job_id>/<model>-group-<g>/ckpt` (deleted once every epoch of
the group is committed; an ensemble group's final checkpoint moves first to the engine's own
checkpoint folder under its data directory, where `keep_model` keeps it for explanations). As
each epoch commits, the driver deletes that group's older checkpoints where it can see them
(models/checkpoints.py). Without shared storage a resumed group
whose checkpoint is missing replays from epoch 0 without re-sending the committed epochs (same
seeds, same results on the same hardware).
"""

import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

import numpy as np

from models.checkpoints import checkpoint_path, prune_checkpoints
from models.predictions import EpochRecord
from models.spec import GroupTask
from service.engine.executors.local import OnRecords, ShouldStop, WorkerFailed, tail
from service.fsutil import atomic_path

if TYPE_CHECKING:
    from ray import ObjectRef, ObjectRefGenerator

STREAM_AHEAD = 2  # records a task may produce before the engine reads them (Ray's generator backpressure)
KEEP_CHECKPOINTS = STREAM_AHEAD + 3  # newest checkpoints a Ray worker keeps: the last committed one among them
_CONNECT_LOCK = threading.Lock()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_Handler = Callable[[int, FrameType | None], object] | int | None


@dataclass(frozen=True)
class TaskStarted:
    """First item of every task's stream: the task holds its resources and runs on `node_id`."""

    node_id: str
    pid: int


@dataclass(frozen=True)
class _Request:
    cpus: float
    gpus: float
    custom: Mapping[str, float]

    def describe(self) -> str:
        asked = [f"{self.cpus:g} CPU", f"{self.gpus:g} GPU"] + [f"{v:g} {k}" for k, v in self.custom.items()]
        return ", ".join(asked)


@dataclass
class _Running:
    task: GroupTask
    request: _Request
    gen: "ObjectRefGenerator"
    node_id: str | None = None  # set once the task has started
    epochs: list[int] = field(default_factory=list)


def stream_task_records(task: GroupTask, X: np.ndarray, y: np.ndarray) -> Iterator[TaskStarted | EpochRecord]:
    """Body of the Ray task: a start marker, then the group's records in epoch order."""
    import ray

    from models.worker import iter_task_records

    torch = sys.modules.get("torch")  # a reused worker keeps the thread count of its first task
    if torch is not None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))  # Ray sets it to the task's CPUs
    yield TaskStarted(node_id=ray.get_runtime_context().get_node_id(), pid=os.getpid())
    yield from iter_task_records(task, X=X, y=y)


class RayExecutor:
    """One Ray task per member group (or AdaBoost), with `num_cpus` / `num_gpus` per task.

    num_gpus_per_group may be fractional (0.25: four groups share a GPU). With `members_per_gpu`
    set, an ensemble group of G members asks for G / members_per_gpu GPUs instead (at most 1: a
    group trains on one device); AdaBoost never asks for a GPU. `resources` adds custom Ray
    resources to every task (e.g. {"curate_gpu_node": 1} to pin work to labelled nodes).
    A task that asks for more than any single alive node has fails at once; a task that waits
    longer than `resource_wait_s` for resources while none of this job's tasks runs fails too.
    `spec.device` should stay "auto" (Ray exposes the task's GPUs as cuda:0...).
    """

    def __init__(self, address: str | None = None, num_cpus_per_group: float = 1, num_gpus_per_group: float = 0,
                 members_per_gpu: int | None = None, shared_dir: str | None = None, resource_wait_s: float = 30,
                 *, resources: Mapping[str, float] | None = None, ray_init_options: Mapping[str, object] | None = None,
                 poll_s: float = 0.2, cancel_grace_s: float = 1.0, node_check_s: float = 2.0) -> None:
        if num_cpus_per_group < 0 or num_gpus_per_group < 0:
            raise ValueError("num_cpus_per_group and num_gpus_per_group must be >= 0")
        if num_gpus_per_group > 1:
            raise ValueError(f"num_gpus_per_group is at most 1 (a group trains on one GPU), got {num_gpus_per_group}")
        if members_per_gpu is not None and members_per_gpu < 1:
            raise ValueError(f"members_per_gpu must be >= 1, got {members_per_gpu}")
        self.address = address
        self.num_cpus_per_group = num_cpus_per_group
        self.num_gpus_per_group = num_gpus_per_group
        self.members_per_gpu = members_per_gpu
        self.shared_dir = shared_dir
        self.resource_wait_s = resource_wait_s
        self.resources = dict(resources or {})
        self.ray_init_options = dict(ray_init_options or {})  # extra ray.init kwargs (num_cpus, ...)
        self.poll_s = poll_s
        self.cancel_grace_s = cancel_grace_s
        self.node_check_s = node_check_s
        self._owns_ray = False

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        """Start or attach to Ray once per process; keeps this process's SIGTERM/SIGINT handlers.

        `ray.init()` installs its own SIGTERM handler (uvicorn then cannot shut down); the
        handlers are saved and restored around it. Call it from the main thread at start-up
        where possible: from another thread neither Ray nor this method can touch signals.
        """
        import ray

        with _CONNECT_LOCK:
            if ray.is_initialized():
                return  # someone (a test, the app) started Ray: use it, do not own it
            address = ray_address(self.address)
            saved = {sig: signal.getsignal(sig) for sig in _SIGNALS}
            try:
                ray.init(address=address, **self.ray_init_options)
            finally:
                _restore_handlers(saved)
            self._owns_ray = True

    def shutdown(self) -> None:
        """Stop Ray if this executor started it (a local instance stops with it)."""
        import ray

        with _CONNECT_LOCK:
            if self._owns_ray and ray.is_initialized():
                ray.shutdown()
            self._owns_ray = False

    # -- run --------------------------------------------------------------------------------
    def run(self, tasks: list[GroupTask], on_records: OnRecords, should_stop: ShouldStop) -> bool:
        if not tasks:
            return True
        import ray

        self.connect()
        requests = [self._request(t) for t in tasks]
        _check_feasible(ray.nodes(), ray.cluster_resources(), tasks, requests)
        running: dict[int, _Running] = {}
        try:
            self._submit(tasks, requests, running)
            return self._consume(running, on_records, should_stop)
        finally:
            self._cancel([r.gen for r in running.values()])

    def _request(self, task: GroupTask) -> _Request:
        gpus = self.num_gpus_per_group
        if task.model == "adaboost":
            gpus = 0.0
        elif self.members_per_gpu is not None:
            share = len(task.members) / self.members_per_gpu
            if share > 1:
                raise WorkerFailed(f"{task.model} group {task.group} has {len(task.members)} members but "
                                   f"members_per_gpu is {self.members_per_gpu}: a group trains on one GPU, so "
                                   f"set members_per_group <= {self.members_per_gpu}")
            gpus = max(round(share, 4), 0.0001)
        return _Request(cpus=float(self.num_cpus_per_group), gpus=float(gpus), custom=self.resources)

    def _submit(self, tasks: list[GroupTask], requests: list[_Request], running: dict[int, _Running]) -> None:
        """Broadcast each dataset once, then start one streaming task per group into `running`."""
        import ray

        # backpressure: at most STREAM_AHEAD records wait unread, so a task's newest checkpoint is
        # at most STREAM_AHEAD + 2 epochs past the last committed one (one being committed, one
        # checkpointed and waiting to be sent): keeping KEEP_CHECKPOINTS keeps the committed one,
        # also on a node whose disk the engine cannot see (and so cannot prune)
        remote = ray.remote(num_returns="streaming", max_retries=0, retry_exceptions=False,
                            _generator_backpressure_num_objects=STREAM_AHEAD)(stream_task_records)
        datasets: dict[tuple[str, str], tuple[ObjectRef, ObjectRef]] = {}
        for task, req in zip(tasks, requests, strict=True):
            key = (task.x_path, task.y_path)
            if key not in datasets:
                X = np.asarray(np.load(task.x_path, mmap_mode="r"))  # copied once into the object store
                datasets[key] = (ray.put(X), ray.put(np.load(task.y_path)))
            X_ref, y_ref = datasets[key]
            gen = remote.options(num_cpus=req.cpus, num_gpus=req.gpus, resources=dict(req.custom),
                                 name=f"curate {task.job_id} {task.model}-group-{task.group}",
                                 ).remote(self._on_shared_storage(task), X_ref, y_ref)
            running[id(gen)] = _Running(task, req, gen)

    def _shared_group_dir(self, task: GroupTask) -> Path | None:
        if self.shared_dir is None or task.checkpoint_dir is None:
            return None
        return Path(self.shared_dir).resolve() / "jobs" / task.job_id / f"{task.model}-group-{task.group}"

    def _on_shared_storage(self, task: GroupTask) -> GroupTask:
        """The task with an absolute checkpoint path (workers run elsewhere), under shared_dir if
        given, and a bound on the checkpoints its worker keeps (KEEP_CHECKPOINTS)."""
        if task.checkpoint_dir is None:
            return task
        group_dir = self._shared_group_dir(task)
        ckpt = group_dir / "ckpt" if group_dir is not None else Path(task.checkpoint_dir).resolve()
        return task.model_copy(update={"checkpoint_dir": str(ckpt), "keep_checkpoints": KEEP_CHECKPOINTS})

    def _drop_shared_checkpoints(self, task: GroupTask) -> None:
        """Every epoch of the group is committed: its checkpoints on shared storage are done with,
        except an ensemble group's final one, which moves first to the engine's own checkpoint
        folder (`task.checkpoint_dir`), where `service.engine.explain.keep_model` keeps it as the model."""
        group_dir = self._shared_group_dir(task)
        if group_dir is None:
            return
        if task.model == "ensemble" and task.checkpoint_dir is not None:
            _move_checkpoint(group_dir / "ckpt", Path(task.checkpoint_dir), task.spec.n_epochs)
        shutil.rmtree(group_dir, ignore_errors=True)
        try:
            group_dir.parent.rmdir()  # the job's folder, once its last group is gone
        except OSError:
            pass

    def _consume(self, running: dict[int, _Running], on_records: OnRecords, should_stop: ShouldStop) -> bool:
        """Hand records to on_records as they arrive, one at a time; True once every stream has ended."""
        import ray

        stalled_since: float | None = None
        next_node_check = time.monotonic() + self.node_check_s
        while running:
            if should_stop():
                return False
            ready, _ = ray.wait([r.gen for r in running.values()], num_returns=1, timeout=self.poll_s)
            for gen in ready:
                if not self._take_next(running[id(gen)], on_records):
                    self._drop_shared_checkpoints(running.pop(id(gen)).task)
            now = time.monotonic()
            if any(r.node_id is not None for r in running.values()) or not running:
                stalled_since = None
            elif stalled_since is None:
                stalled_since = now
            elif now - stalled_since > self.resource_wait_s:
                raise WorkerFailed(_pending_message(running, self.resource_wait_s, ray.available_resources()))
            if now >= next_node_check:
                _check_nodes(ray.nodes(), running)
                next_node_check = now + self.node_check_s
        return True

    def _take_next(self, run: _Running, on_records: OnRecords) -> bool:
        """Consume the next item of one stream; False once the stream has ended."""
        import ray

        try:
            ref = next(run.gen)
        except StopIteration:
            return False
        try:
            item = ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise WorkerFailed(_failure_message(run, exc)) from None
        if isinstance(item, TaskStarted):
            run.node_id = item.node_id
            return True
        run.epochs.append(item.epoch)
        on_records(run.task, [item])
        prune_checkpoints(self._on_shared_storage(run.task).checkpoint_dir, item.epoch)  # committed
        return True

    def _cancel(self, gens: list["ObjectRefGenerator"]) -> None:
        """Interrupt every task (KeyboardInterrupt), then kill the ones still running after the grace."""
        if not gens:
            return
        import ray

        for gen in gens:
            _quiet_cancel(ray, gen, force=False)
        time.sleep(self.cancel_grace_s)
        for gen in gens:
            _quiet_cancel(ray, gen, force=True)


# -- helpers --------------------------------------------------------------------------------
def ray_address(address: str | None) -> str:
    """What ray.init gets: the address given, else $RAY_ADDRESS, else "local" (a private
    instance). Never None: a plain ray.init() would attach to any cluster running here."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def _move_checkpoint(src_dir: Path, dest_dir: Path, epoch: int) -> None:
    """Move `epoch-<epoch>.pt` from src_dir to dest_dir (a .tmp name until complete: the two may be
    on different file systems, and a half-copied file must never look like a checkpoint)."""
    src = checkpoint_path(src_dir, epoch)
    if not src.exists():
        return
    dest = checkpoint_path(dest_dir, epoch)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as partial:
        shutil.move(src, partial)


def _restore_handlers(saved: dict[signal.Signals, _Handler]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def _quiet_cancel(ray: ModuleType, gen: "ObjectRefGenerator", force: bool) -> None:
    try:
        ray.cancel(gen, force=force)
    except Exception:  # noqa: BLE001 - a finished task or a dead node has nothing left to cancel
        pass


def _node_summary(node: Mapping[str, object]) -> str:
    res: Mapping[str, float] = node.get("Resources") or {}  # type: ignore[assignment]
    custom = [f"{v:g} {k}" for k, v in sorted(res.items())
              if k not in ("CPU", "GPU", "memory", "object_store_memory") and not k.startswith("node:")]
    parts = [f"{res.get('CPU', 0):g} CPU", f"{res.get('GPU', 0):g} GPU"] + custom
    return f"node {node.get('NodeManagerAddress', '?')}: " + ", ".join(parts)


def _check_feasible(nodes: list[dict], totals: Mapping[str, float], tasks: list[GroupTask],
                    requests: list[_Request]) -> None:
    """Fail at once if a task asks for more than any single alive node offers (Ray would wait forever)."""
    alive = [n for n in nodes if n.get("Alive")]
    for task, req in zip(tasks, requests, strict=True):
        wanted = {"CPU": req.cpus, "GPU": req.gpus, **req.custom}
        if any(all(n["Resources"].get(k, 0.0) >= v for k, v in wanted.items() if v > 0) for n in alive):
            continue
        have = "; ".join(_node_summary(n) for n in alive) or "no alive nodes"
        total = ", ".join(f"{totals.get(k, 0):g} {k}" for k in wanted)
        raise WorkerFailed(f"{task.model} group {task.group} asks for {req.describe()} per task, but no node of "
                           f"the Ray cluster offers that much ({have}; cluster total {total}). Lower "
                           f"num_gpus_per_group / num_cpus_per_group, or add a node with those resources.")


def _check_nodes(nodes: list[dict], running: dict[int, _Running]) -> None:
    """A started task whose node is gone has failed, whether or not Ray has said so yet."""
    alive = {n["NodeID"] for n in nodes if n.get("Alive")}
    for run in running.values():
        if run.node_id is not None and run.node_id not in alive:
            after = f"after epoch {run.epochs[-1]}" if run.epochs else "before its first epoch"
            raise WorkerFailed(f"{run.task.model} group {run.task.group} lost its Ray worker {after}: "
                               f"node {run.node_id} died (the epochs received before are committed)")


def _pending_message(running: dict[int, _Running], waited_s: float, available: Mapping[str, float]) -> str:
    pending = [r for r in running.values() if r.node_id is None]
    names = ", ".join(f"{r.task.model} group {r.task.group} ({r.request.describe()})" for r in pending)
    free = ", ".join(f"{available.get(k, 0):g} {k}" for k in ("CPU", "GPU"))
    return (f"waited {waited_s:g} s for Ray resources and none of this job's tasks started: {names}; "
            f"the cluster has {free} free now (other work may hold them). Raise resource_wait_s or free capacity.")


def _failure_message(run: _Running, exc: BaseException) -> str:
    import ray

    after = f"after epoch {run.epochs[-1]}" if run.epochs else "before its first epoch"
    text = _ANSI.sub("", str(exc))
    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"{run.task.model} group {run.task.group} failed {after}:\n{tail(text)}"
    return (f"{run.task.model} group {run.task.group} lost its Ray worker {after} ({type(exc).__name__}; "
            f"the epochs received before are committed):\n{tail(text)}")
