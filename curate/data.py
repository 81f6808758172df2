"""What `curate.score` and `curate.Recorder` accept as data, turned into a file Curate ingests.

numpy arrays become an .npz (X, y), pandas and polars DataFrames a .parquet (the label in column
`label`); a path is ingested as it is; a stored dataset id is used as it is. Writing a file and
ingesting it is the one way data enters the store (the CLI and the REST upload do the same), so
the same arrays scored twice reuse one stored dataset.
"""

import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.cli.client import CurateError

DATASET_ID = re.compile(r"^[0-9a-f]{12}$")
FILE_SUFFIXES = (".csv", ".parquet", ".npz", ".zip")


@dataclass(frozen=True)
class DataSource:
    """Where the data is: a file to ingest (path, label_column) or a stored dataset (dataset_id)."""

    path: Path | None = None
    label_column: str = "label"
    dataset_id: str | None = None


def _as_numpy(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    elif hasattr(values, "to_numpy"):  # pandas / polars Series
        values = values.to_numpy()
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise CurateError(f"{name}: cannot be read as an array ({type(values).__name__}: {exc})",
                          "invalid_dataset") from None


def _is_frame(data: object) -> bool:
    return type(data).__module__.split(".")[0] in ("pandas", "polars") and hasattr(data, "columns")


@contextmanager
def data_source(data: Any, y: Any = None, *, label: str = "label", n_classes: int | None = None):  # type: ignore[no-untyped-def]
    """A DataSource for `data` (a temporary file lives while inside). n_classes: the labels y are
    class indexes 0..n_classes-1 (the Recorder's logits columns), so every class is kept in that
    order even when some index never occurs as a label."""
    if isinstance(data, str | Path) and y is None:
        path = Path(data)
        if path.exists():
            yield DataSource(path=path, label_column=label)
            return
        if isinstance(data, str) and DATASET_ID.match(data):
            yield DataSource(dataset_id=data)
            return
        raise CurateError(f"{data}: no such file, and not a stored dataset id (12 hex digits)", "invalid_dataset")
    with tempfile.TemporaryDirectory(prefix="curate-") as tmp:
        if _is_frame(data):
            yield DataSource(path=_write_frame(data, y, label, Path(tmp)), label_column=label)
        elif isinstance(data, tuple) and len(data) == 2 and y is None:
            yield DataSource(path=_write_arrays(data[0], data[1], n_classes, Path(tmp)))
        elif y is not None:
            yield DataSource(path=_write_arrays(data, y, n_classes, Path(tmp)))
        else:
            raise CurateError(f"cannot score {type(data).__name__}: give arrays X and y, a pandas or polars "
                              "DataFrame with label=, a path (.csv, .parquet, .npz, .zip, image folder) or a "
                              "stored dataset id", "invalid_dataset")


def _write_arrays(X: Any, y: Any, n_classes: int | None, folder: Path) -> Path:
    X_arr, y_arr = _as_numpy(X, "X"), _as_numpy(y, "y")
    if y_arr.ndim != 1 or len(y_arr) != len(X_arr):
        raise CurateError(f"y has shape {y_arr.shape}; expected one label per row of X {X_arr.shape}, shape "
                          f"({len(X_arr)},)", "invalid_dataset")
    arrays = {"X": X_arr, "y": y_arr}
    if n_classes is not None:
        if y_arr.dtype.kind not in "iu":
            raise CurateError(f"with n_classes, y must hold class indexes 0..{n_classes - 1} (the columns of your "
                              f"logits), got dtype {y_arr.dtype}", "invalid_dataset")
        arrays["class_names"] = np.array([str(k) for k in range(n_classes)])
    path = folder / "arrays.npz"
    np.savez(path, **arrays)
    return path


def _write_frame(frame: Any, y: Any, label: str, folder: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if type(frame).__module__.split(".")[0] == "polars":
        table = frame.to_arrow()
    else:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    if y is not None:
        if label in table.column_names:
            raise CurateError(f"the DataFrame has a column {label!r} and y was given too; give one of them",
                              "invalid_dataset")
        table = table.append_column(label, pa.array(_as_numpy(y, "y")))
    elif label not in table.column_names:
        raise CurateError(f"the DataFrame has no column {label!r}; name the label column with label= "
                          f"(columns: {', '.join(table.column_names[:20])})", "invalid_dataset")
    path = folder / "dataframe.parquet"
    pq.write_table(table, path)
    return path
