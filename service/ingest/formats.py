"""Read an uploaded dataset into arrays: an image folder or zip, CSV, JSON Lines, Parquet or NPZ.

Every problem a user can cause raises `InvalidDataset` (or its subclasses `UnsupportedFormat`,
`DatasetTooLarge`) with one message of the form "<file name>: <what is wrong>[; <how to fix>]",
naming the row ("row N", 0-based data row; "index N" in NPZ), column, class or archive member.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.errors import InvalidDataset, UnsupportedFormat
from service.ingest.columns import encode_table
from service.ingest.embeddings import NPZ_KEY as EMBEDDINGS
from service.ingest.embeddings import check_vectors
from service.ingest.features import FeaturePlan, embed_images, plan_features
from service.ingest.images import check_archive, images_from_array, load_image_folder, load_image_zip
from service.ingest.options import IngestOptions
from service.ingest.tables import read_csv, read_jsonl, read_parquet
from service.limits import IngestLimits  # noqa: F401  (part of this module's API)

SourceFormat = Literal["image_folder", "zip", "csv", "parquet", "npz", "jsonl"]
_SUFFIX_FORMATS: dict[str, SourceFormat] = {
    ".zip": "zip",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    X: np.ndarray  # tabular: (n, d) float32 ; images: (n, C, H, W) uint8 with C in {1, 3}
    y: np.ndarray  # (n,) int64 in 0..K-1, index into class_names
    class_names: list[str]  # (K,) sorted (NPZ with class_names: as given)
    sources: list[str]  # (n,) "cat/001.png" relative to the dataset root, "row N" (tables), "index N" (NPZ)
    kind: Literal["tabular", "image"]
    feature_names: list[str] | None  # (d,) column names (NPZ: f0..f{d-1}); None for images
    # how the file was read, for the user to check before training (stored with the dataset, shown by
    # GET /datasets/{id}): one key per reader, e.g. "columns" (roles), "text" (embedder), "images"
    report: dict[str, object] = field(default_factory=dict)
    texts: list[str] | None = None  # (n,) text datasets: each example's text, kept as texts.parquet (ingest/text.py)
    # tables: columns.json, the roles with their fitted encoding and the feature -> column map (ingest/columns.py)
    columns: dict[str, object] | None = None
    table: pa.Table | None = None  # tables: the columns as read (label included), kept as table.parquet
    pixels: np.ndarray | None = None  # pretrained features: (n, C, H, W) uint8 images, kept as pixels.npy


def detect_format(path: Path) -> SourceFormat:
    """A directory is an image folder; files go by suffix (case-insensitive)."""
    if path.is_dir():
        return "image_folder"
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    found = f"file type {path.suffix!r}" if suffix else "file without a suffix"
    raise UnsupportedFormat(
        f"{path.name}: unsupported {found}; supported: a folder with one subfolder per class, "
        f"{', '.join(_SUFFIX_FORMATS)}"
    )


def load_dataset(path: Path, options: IngestOptions = IngestOptions(),
                 limits: IngestLimits = IngestLimits()) -> LoadedDataset:
    """Read and validate one dataset as `options` say; at least 2 classes with at least 2 examples each."""
    resize = options.resize  # resize: (H, W) for images, bilinear
    if not path.exists():
        raise InvalidDataset(f"{path}: does not exist")
    fmt = detect_format(path)
    from service.ingest.text import is_text_folder, load_text_folder  # text.py reads LoadedDataset from here
    text_folder = fmt in ("image_folder", "zip") and is_text_folder(path)
    plan = None  # pretrained features: backbone and weights checked before any image is decoded
    if options.features is not None and not text_folder and fmt in ("image_folder", "zip", "npz"):
        plan = plan_features(path.name, options.features, options.weights)
    if text_folder:  # .txt files in class folders
        _refuse_skip_unreadable(path.name, options, "a folder of texts")
        loaded = load_text_folder(path, options, limits)
    elif fmt in ("image_folder", "zip"):
        read = load_image_folder if fmt == "image_folder" else load_image_zip
        ex = read(path, options, limits)
        loaded = LoadedDataset(ex.X, ex.y, ex.class_names, ex.sources, kind="image", feature_names=None,
                               report={"images": ex.report})
    elif fmt == "npz":
        _refuse_table_options(path.name, options, "an NPZ of arrays")
        _refuse_skip_unreadable(path.name, options, "an NPZ of arrays")
        loaded = _load_npz(path, resize, limits)
    else:
        if resize is not None:
            raise InvalidDataset(f"{path.name}: resize applies to images only; this dataset is tabular")
        _refuse_image_options(path.name, options, "a table")
        report: dict[str, object] = {}
        if fmt == "csv":
            table, report["file"] = read_csv(path, limits)
        else:
            table = read_jsonl(path, limits) if fmt == "jsonl" else read_parquet(path, limits)
        loaded = _from_table(path.name, table, options, report)
    _check_classes(path.name, loaded.y, loaded.class_names, "image" if loaded.kind == "image" else "example")
    return loaded if plan is None else _with_features(path.name, loaded, plan)


def _with_features(name: str, loaded: LoadedDataset, plan: FeaturePlan) -> LoadedDataset:
    """Images -> a table of their pretrained embeddings (ingest/features.py); the pixels stay for thumbnails."""
    if loaded.kind != "image":
        raise InvalidDataset(f"{name}: --features applies to images only; this NPZ holds a table "
                             f"(X of shape {tuple(loaded.X.shape)})")
    X, feature_names, report = embed_images(name, loaded.X, plan)
    return LoadedDataset(X, loaded.y, loaded.class_names, loaded.sources, kind="tabular",
                         feature_names=feature_names, report={**loaded.report, "features": report},
                         pixels=loaded.X)


def _check_classes(name: str, y: np.ndarray, class_names: list[str], noun: str) -> None:
    if len(y) == 0:
        raise InvalidDataset(f"{name}: no examples")
    if len(class_names) < 2:
        raise InvalidDataset(f"{name}: only one class ({class_names[0]!r}); need at least 2 classes")
    counts = np.bincount(y, minlength=len(class_names))
    small = [(c, int(k)) for c, k in zip(class_names, counts) if k < 2]
    if small:
        c, k = small[0]
        others = f" (also {_listing([s for s, _ in small[1:]])})" if len(small) > 1 else ""
        raise InvalidDataset(
            f"{name}: class {c!r} has {k} {noun}{'' if k == 1 else 's'}; every class needs at least 2{others}"
        )


def _listing(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(s) for s in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# --- tables --------------------------------------------------------------------------------------


def _from_table(name: str, table: pa.Table, options: IngestOptions, report: dict[str, object]) -> LoadedDataset:
    """Each feature column's role (service/ingest/columns.py) decides its encoding; the roles go
    into the ingest report, the fitted encoding into columns.json."""
    names, label_column = table.column_names, options.label_column
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise InvalidDataset(f"{name}: column {duplicates[0]!r} appears more than once")
    if label_column not in names:
        hint = _one_column_hint(names[0]) if len(names) == 1 else ""
        raise InvalidDataset(f"{name}: no label column {label_column!r}; the columns are {_listing(names)}{hint}")
    if table.num_rows == 0:
        raise InvalidDataset(f"{name}: no data rows")
    if len(names) == 1:
        raise InvalidDataset(f"{name}: no feature columns besides the label column {label_column!r}"
                             f"{_one_column_hint(names[0])}")
    y, class_names = _encode_labels(name, table.column(label_column), "row", f" in column {label_column!r}")
    encoded = encode_table(name, table, options)
    sources = [f"row {i}" for i in range(table.num_rows)]
    return LoadedDataset(encoded.X, y, class_names, sources, kind="tabular", feature_names=encoded.feature_names,
                         report={**report, "columns": encoded.report()}, texts=encoded.texts,
                         columns=encoded.columns_json(), table=table)


def _one_column_hint(header: str) -> str:
    """For a table read as one column: a likely delimiter in its header (sniffing found none)."""
    seen = [d for d in ";\t|,:" if d in header]
    return f" (the header {header[:60]!r} holds {seen[0]!r}: is that the delimiter?)" if seen else ""


def _refuse_image_options(name: str, options: IngestOptions, kind: str) -> None:
    for option, flag in (("features", "--features"), ("weights", "--weights")):
        if getattr(options, option) is not None:
            raise InvalidDataset(f"{name}: {flag} applies to images only; this dataset is {kind}")
    _refuse_skip_unreadable(name, options, kind)


def _refuse_skip_unreadable(name: str, options: IngestOptions, kind: str) -> None:
    if options.skip_unreadable:
        raise InvalidDataset(f"{name}: --skip-unreadable applies to a folder or zip of image files; this "
                             f"dataset is {kind}")


def _refuse_table_options(name: str, options: IngestOptions, kind: str) -> None:
    for option, flag in (("categorical", "--categorical"), ("ignore", "--ignore"), ("text_column", "--text-column")):
        if getattr(options, option) not in ((), None):
            raise InvalidDataset(f"{name}: {flag} applies to table columns (CSV, JSON Lines, Parquet); "
                                 f"this dataset is {kind}")


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _float32_features(
    name: str, columns: Iterable[np.ndarray], feature_names: list[str], n: int, unit: str
) -> np.ndarray:  # columns: d arrays (n,) float64 -> (n, d) float32, every value finite
    X = np.empty((n, len(feature_names)), dtype=np.float32)
    first_bad: tuple[int, int, float] | None = None  # (row, column index, value)
    for j, col in enumerate(columns):
        with np.errstate(over="ignore"):
            X[:, j] = col
        bad = ~np.isfinite(X[:, j])
        if bad.any():
            i = int(np.argmax(bad))
            if first_bad is None or i < first_bad[0]:
                first_bad = (i, j, float(col[i]))
    if first_bad is not None:
        i, j, v = first_bad
        problem = "is missing or NaN" if np.isnan(v) else "is infinite" if np.isinf(v) else f"is {v:g}, beyond float32"
        raise InvalidDataset(f"{name}: {unit} {i}, column {feature_names[j]!r} {problem}")
    return X


def _encode_labels(
    name: str, labels: pa.Array | pa.ChunkedArray, unit: str, where: str
) -> tuple[np.ndarray, list[str]]:  # (n,) int64 into sorted class names
    """Integers sort numerically, strings lexicographically; floats must be whole numbers."""
    labels = _decoded(labels) if isinstance(labels, pa.ChunkedArray) else labels
    t = labels.type

    def missing(i: int) -> InvalidDataset:
        return InvalidDataset(f"{name}: {unit} {i} has no label{where}")

    if labels.null_count:
        raise missing(pc.index(pc.is_null(labels), True).as_py())
    if pa.types.is_integer(t):
        values = labels.to_numpy()
    elif pa.types.is_floating(t):
        values = labels.to_numpy()
        if np.isnan(values).any():
            raise missing(int(np.argmax(np.isnan(values))))
        fractional = values != np.round(values)
        if fractional.any():
            i = int(np.argmax(fractional))
            raise InvalidDataset(
                f"{name}: {unit} {i} has label {values[i]:g}{where}; labels must be integers or strings"
            )
        values = values.astype(np.int64)
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t):
        texts = [str(v) for v in labels.to_pylist()]
        blank = next((i for i, s in enumerate(texts) if not s.strip()), None)
        if blank is not None:
            raise missing(blank)
        values = np.array(texts, dtype=str)
    else:
        raise InvalidDataset(f"{name}: labels{where} have type {t}; labels must be integers or strings")
    uniques, y = np.unique(values, return_inverse=True)
    return y.reshape(-1).astype(np.int64), [str(u) for u in uniques]


# --- npz -----------------------------------------------------------------------------------------


def _load_npz(path: Path, resize: tuple[int, int] | None, limits: IngestLimits) -> LoadedDataset:
    """Arrays X, y and optional class_names (strings; then y must be ints indexing it); `embeddings`
    (n, d) in place of X: vectors of the user's own."""
    name = path.name
    arrays = _read_npz(path, limits)
    if EMBEDDINGS in arrays:
        return _load_npz_embeddings(name, arrays, resize)
    X, y = arrays["X"], arrays["y"]
    if X.dtype.kind not in "biuf":
        raise InvalidDataset(f"{name}: X has dtype {X.dtype}; expected numbers")
    if X.ndim not in (2, 3, 4):
        raise InvalidDataset(
            f"{name}: X has shape {X.shape}; expected (n, d) features "
            "or images as (n, H, W), (n, C, H, W) or (n, H, W, C)"
        )
    if y.ndim != 1:
        raise InvalidDataset(f"{name}: y has shape {y.shape}; expected one label per example, shape (n,)")
    if len(X) != len(y):
        raise InvalidDataset(f"{name}: X has {len(X)} examples but y has {len(y)} labels")
    if len(y) == 0:
        raise InvalidDataset(f"{name}: no examples (X and y are empty)")
    y_idx, class_names = _npz_labels(name, y, arrays)
    sources = [f"index {i}" for i in range(len(y))]
    if X.ndim > 2:
        X_img = images_from_array(name, X, resize, limits)
        return LoadedDataset(X_img, y_idx, class_names, sources, kind="image", feature_names=None)
    if resize is not None:
        raise InvalidDataset(f"{name}: resize applies to images only; X has shape {X.shape} (tabular)")
    if X.shape[1] == 0:
        raise InvalidDataset(f"{name}: X has shape {X.shape}; no features")
    feature_names = [f"f{j}" for j in range(X.shape[1])]
    as_float = (X[:, j].astype(np.float64) for j in range(X.shape[1]))
    X32 = _float32_features(name, as_float, feature_names, len(X), "index")
    return LoadedDataset(X32, y_idx, class_names, sources, kind="tabular", feature_names=feature_names)


def _npz_labels(name: str, y: np.ndarray, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """An NPZ's labels as class indexes and names: y indexes `class_names` when it is there, else y's
    own values are the classes."""
    if "class_names" in arrays:
        return _indexed_labels(name, y, arrays["class_names"])
    return _encode_labels(name, _labels_array(name, y), "index", "")


def _load_npz_embeddings(name: str, arrays: dict[str, np.ndarray], resize: tuple[int, int] | None) -> LoadedDataset:
    """An `embeddings` array (n, d) of the user's own vectors, taken as features as they are (ingest/embeddings.py)."""
    E, y = arrays[EMBEDDINGS], arrays["y"]
    if resize is not None:
        raise InvalidDataset(f"{name}: resize applies to images only; {EMBEDDINGS!r} holds vectors")
    if E.dtype.kind not in "biuf":
        raise InvalidDataset(f"{name}: {EMBEDDINGS!r} has dtype {E.dtype}; expected numbers")
    if E.ndim != 2 or E.shape[1] == 0:
        raise InvalidDataset(f"{name}: {EMBEDDINGS!r} has shape {E.shape}; expected (n, d), one vector of d > 0 "
                             "numbers per example")
    if y.ndim != 1 or len(y) != len(E):
        raise InvalidDataset(f"{name}: {EMBEDDINGS!r} has {len(E)} vectors but y has shape {y.shape}; "
                             "expected one label per vector")
    if len(y) == 0:
        raise InvalidDataset(f"{name}: no examples ({EMBEDDINGS!r} and y are empty)")
    y_idx, class_names = _npz_labels(name, y, arrays)
    X = check_vectors(name, E, f"array {EMBEDDINGS!r}", "index")
    report = {"embeddings": {"array": EMBEDDINGS, "n_vectors": int(len(E)), "dims": int(E.shape[1]),
                             "reason": "vectors of your own, taken as features as they are"}}
    return LoadedDataset(X, y_idx, class_names, [f"index {i}" for i in range(len(y))], kind="tabular",
                         feature_names=[f"{EMBEDDINGS}[{j}]" for j in range(E.shape[1])], report=report)


def _read_npz(path: Path, limits: IngestLimits) -> dict[str, np.ndarray]:
    name = path.name
    try:
        with zipfile.ZipFile(path) as zf:  # legit compressed arrays can be sparse: sizes only, no ratio check
            check_archive(name, zf.infolist(), limits, check_ratio=False)
    except zipfile.BadZipFile as e:
        raise InvalidDataset(f"{name}: not a valid .npz file ({e})") from e
    errors = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    try:
        npz = np.load(path, allow_pickle=False)
    except errors as e:
        raise InvalidDataset(f"{name}: cannot read the arrays ({e})") from e
    with npz:
        found = ", ".join(repr(f) for f in npz.files) or "none"
        if "X" in npz.files and EMBEDDINGS in npz.files:
            raise InvalidDataset(f"{name}: holds both 'X' and {EMBEDDINGS!r}; keep one array of features")
        features = EMBEDDINGS if EMBEDDINGS in npz.files else "X"
        for key in (features, "y"):
            if key not in npz.files:
                also = f" (or {EMBEDDINGS!r}, vectors of your own)" if key == "X" else ""
                raise InvalidDataset(f"{name}: missing array {key!r}{also}; found {found}")
        arrays: dict[str, np.ndarray] = {}
        for key in (features, "y", "class_names"):
            try:
                if key in npz.files:
                    _check_npy_header(name, path, key)
                    arrays[key] = npz[key]
            except errors as e:  # e.g. an object array, which would need pickle
                raise InvalidDataset(f"{name}: cannot read array {key!r} ({e})") from e
            except MemoryError as e:  # a header that passed the check but still cannot be allocated
                raise InvalidDataset(f"{name}: array {key!r} does not fit in memory ({e})") from e
        return arrays


def _check_npy_header(name: str, path: Path, key: str) -> None:
    """Refuse an array whose header declares more data than its file holds, before numpy allocates
    it: a 1 KB .npz declaring shape (10**12, 3) made np.load raise MemoryError (a 500)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy version {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f, max_header_size=100_000)
            header_bytes = f.tell()
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = info.file_size - header_bytes
    if not dtype.hasobject and declared != held:
        raise InvalidDataset(f"{name}: array {key!r} declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) "
                             f"but its file holds {held:,} bytes of data")


def _labels_array(name: str, y: np.ndarray) -> pa.Array:
    if y.dtype.kind == "S":
        try:
            y = np.char.decode(y, "utf-8")
        except UnicodeDecodeError as e:
            raise InvalidDataset(f"{name}: y holds bytes that are not UTF-8 ({e})") from e
    if y.dtype.kind not in "biufU":
        raise InvalidDataset(f"{name}: y has dtype {y.dtype}; labels must be integers or strings")
    return pa.array(y)


def _indexed_labels(name: str, y: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, list[str]]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise InvalidDataset(f"{name}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    class_names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    repeated = sorted({c for c in class_names if class_names.count(c) > 1})
    if repeated:
        raise InvalidDataset(f"{name}: class_names lists {repeated[0]!r} more than once")
    if y.dtype.kind not in "iu":
        raise InvalidDataset(f"{name}: y has dtype {y.dtype}; with class_names, y must hold integer indexes into it")
    outside = (y < 0) | (y >= len(class_names))
    if outside.any():
        i = int(np.argmax(outside))
        raise InvalidDataset(
            f"{name}: index {i} has label {y[i]}, outside class_names (0..{len(class_names) - 1})"
        )
    return y.astype(np.int64), class_names
