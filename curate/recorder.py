"""`Recorder`: the training dynamics of your own model(s), scored like Curate's ensemble.

    rec = curate.Recorder(dataset=(X, y), n_classes=10)
    for epoch in range(1, 21):
        train_one_epoch(model)
        rec.log(epoch, example_ids, logits)   # once per epoch (or per batch: rows add up)
    result = rec.finish()                    # a curate.Result

Epoch 0 is the model before training (log it if you can; else a chance-level placeholder is
used, see service/engine/recorded.py), epochs 1, 2, ... follow each training epoch. Several
models (model=0, 1, ...) are scored as an ensemble (consistency x margin); one model gets
AUM-style margin scores. Rows of one (model, epoch) may come in any batches and order; the
epoch is sent when every example has its logits. In-process the epochs go through the engine's
store (the one DuckDB writer); with url= they go to a server (POST /jobs/{id}/epochs).
"""

from pathlib import Path
from typing import Any

import numpy as np

from curate.data import _as_numpy, data_source
from curate.errors import with_curate_errors
from curate.result import LocalSource, RemoteSource, Result
from curate.session import local_backend
from service.cli.client import Client, CurateError
from service.engine import recorded
from service.ingest.options import IngestOptions


@with_curate_errors
class Recorder:
    """Log per-epoch logits of your models for every example of `dataset`; finish() scores them.

    dataset: a path, a stored dataset id, arrays (X, y) or a DataFrame (with `label`). With arrays
    and `n_classes`, y holds class indexes 0..n_classes-1, the columns of your logits. Otherwise
    the logits' columns follow the dataset's class_names (sorted labels: see `class_names`).
    n_models, n_epochs: what you expect to log (progress only). data_dir: the in-process store (a
    temporary one by default); url (+ api_key): a Curate server instead.
    """

    def __init__(self, dataset: Any, n_classes: int | None = None, *, label: str = "label", n_models: int = 1,
                 n_epochs: int = 1, data_dir: str | Path | None = None, url: str | None = None,
                 api_key: str | None = None, name: str | None = None) -> None:
        self.client = Client(url, api_key) if url else None
        self.backend = None if self.client else local_backend(data_dir)
        with data_source(dataset, label=label, n_classes=n_classes) as source:
            if source.dataset_id is not None:
                ds = self._api_dataset(source.dataset_id)
            else:
                path, column = source.path, source.label_column
                options = IngestOptions(label_column=column)
                ds = (self.client.upload(path, options, name=name) if self.client else  # type: ignore[arg-type]
                      self.backend.add_dataset(path, options, name))  # type: ignore[union-attr,arg-type]
        if n_classes is not None and ds.n_classes != n_classes:
            raise CurateError(f"dataset {ds.dataset_id} has {ds.n_classes} classes ({', '.join(ds.class_names[:10])}), "
                              f"not n_classes={n_classes}", "invalid_spec")
        self.dataset_id, self.n_examples, self.n_classes = ds.dataset_id, ds.n_examples, ds.n_classes
        self.class_names: list[str] = ds.class_names  # the columns of the logits, in order
        if self.client:
            self.job_id = self.client.create_recorded(ds.dataset_id, n_models=n_models, n_epochs=n_epochs).job_id
        else:
            self.job_id = recorded.create(self.backend.engine, ds.dataset_id, n_models, n_epochs)  # type: ignore[union-attr]
        self._pending: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (model, epoch) -> logits, seen

    def _api_dataset(self, dataset_id: str):  # type: ignore[no-untyped-def]
        return self.client.dataset(dataset_id) if self.client else self.backend.dataset(dataset_id)  # type: ignore[union-attr]

    def log(self, epoch: int, example_ids: Any, logits: Any, model: int = 0) -> None:
        """Logits (n_rows, n_classes) of `model` at `epoch` for the examples `example_ids` (n_rows,)
        (numpy arrays, torch tensors or lists). Logging an example twice in one epoch keeps the
        last; the epoch is committed once every example has its row."""
        ids = _as_numpy(example_ids, "example_ids").reshape(-1)
        z = _as_numpy(logits, "logits")
        if z.ndim != 2 or z.shape != (len(ids), self.n_classes):
            raise CurateError(f"logits {z.shape} must be (len(example_ids), n_classes) = ({len(ids)}, "
                              f"{self.n_classes})", "invalid_spec")
        if ids.dtype.kind not in "iu" or (len(ids) and (ids.min() < 0 or ids.max() >= self.n_examples)):
            raise CurateError(f"example_ids must be integers 0..{self.n_examples - 1} (the dataset's rows)",
                              "invalid_spec")
        if not 0 <= epoch <= recorded.MAX_EPOCH or not 0 <= model < recorded.MAX_MODELS:
            raise CurateError(f"epoch must be 0..{recorded.MAX_EPOCH} and model 0..{recorded.MAX_MODELS - 1}, "
                              f"got epoch {epoch}, model {model}", "invalid_spec")
        key = (int(model), int(epoch))
        if key not in self._pending:
            self._pending[key] = (np.zeros((self.n_examples, self.n_classes), np.float32),
                                  np.zeros(self.n_examples, bool))
        buffer, seen = self._pending[key]
        buffer[ids] = z
        seen[ids] = True
        if seen.all():
            del self._pending[key]
            self._send(key[0], key[1], buffer)

    def _send(self, model: int, epoch: int, logits: np.ndarray) -> None:
        if self.client:
            self.client.log_epoch(self.job_id, model, epoch, logits)
        else:
            recorded.log_epoch(self.backend.engine, self.job_id, model, epoch, logits)  # type: ignore[union-attr]

    def finish(self) -> Result:
        """Score every logged epoch and return the Result (CurateError naming what is missing)."""
        if self._pending:
            (model, epoch), (_, seen) = next(iter(sorted(self._pending.items())))
            raise CurateError(f"model {model}, epoch {epoch}: {int((~seen).sum())} of {self.n_examples} examples "
                              f"have no logits yet (e.g. example {int(np.argmin(seen))}); log their rows "
                              "first", "invalid_spec")
        if self.client:
            self.client.finish_recorded(self.job_id)
            return Result(RemoteSource(self.client), self.job_id)
        recorded.finish(self.backend.engine, self.job_id)  # type: ignore[union-attr]
        return Result(LocalSource(self.backend), self.job_id)  # type: ignore[arg-type]

