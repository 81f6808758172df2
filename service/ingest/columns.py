"""Mixed-type tables: each feature column's role, inferred (or named by the user) and explained, then
encoded to one float32 matrix the ensemble trains on.

Roles: `numeric`, `categorical`, `boolean`, `datetime`, `text` and `embedding` become features; `id` (unique
identifiers), `constant` (one value) and `ignored` (--ignore, or a type no encoding applies to) do
not. Each role comes with a one-line reason, so the user can check the reading before training and
override it (--categorical, --ignore, --text-column). Encodings:

    numeric      the value; gaps median-imputed, plus a `<col>(missing)` indicator
    boolean      0/1; gaps as numeric
    categorical  one-hot (`<col>=<value>`, rare values share `<col>=(other)`) up to ONEHOT_MAX
                 categories, else the value's share of rows (`<col>(frequency)`); a gap is a category
    datetime     `<col>.year`, `.month`, `.dayofweek` (Monday 0), `.hour` when times are present
    text         the embedding of service.ingest.text.embed_texts: `<col>[0]` .. `<col>[d-1]`
    embedding    fixed-length float lists (or such lists written as text), as given: `<col>[0]` .. (embeddings.py)

`feature_column` maps each feature back to its column, so attributions can be summed per column.
Pure: pyarrow, numpy, scikit-learn; nothing is written here (files.py saves columns.json).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.errors import InvalidDataset
from service.ingest.embeddings import encode_vectors, is_vector_column, is_vector_text, vector_reason, vectors_from_text
from service.ingest.options import IngestOptions

FEATURE_ROLES = ("numeric", "categorical", "boolean", "datetime", "text", "embedding")  # roles that become features
ONEHOT_MAX = 30  # categories one-hot encoded; more distinct values are frequency-encoded
OTHER_SHARE = 0.005  # a category in fewer rows than this share (and at least 2 rows) goes to "(other)"
ID_MIN_ROWS = 20  # unique values make an id only from this many rows on (or with an id-like name)
ID_UNIQUE = 0.95  # ... and from this share of distinct strings on (emails with a few repeats)
TEXT_MIN_WORDS = 4  # median words of an inferred text column
TEXT_MIN_UNIQUE = 0.5  # share of distinct values of an inferred text column
NUMBER_SHARE = 0.9  # a string column with this share of numbers is numeric; the rest are gaps
MISSING, OTHER = "(missing)", "(other)"
MAX_SAID = 20  # columns a refusal describes one by one
ACTION_COLUMN = "curate_action"  # the decision column of Curate's exports: read back, it is no feature
_BOOLEAN_PAIRS = ({"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"})
_TRUE = {"true", "yes", "y", "t"}
_ISO = "iso"  # ISO 8601 dates and times, as pyarrow casts them
_DAYS = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")  # day/month first: most of the world
_FORMATS = tuple(f"{d}{t}" for d in _DAYS for t in ("", " %H:%M", " %H:%M:%S"))
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_COMMA_NUMBER = r"^\s*[-+]?\d+(,\d+)?\s*$"  # 1,5 for 1.5
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index|idx)$|^unnamed: ?0$|^(row|record)_?(id|no|num)$", re.I)


@dataclass(frozen=True)
class ColumnRole:
    column: str
    role: str  # one of FEATURE_ROLES, "id", "constant", "ignored" or "label"
    reason: str  # one line, for the user: why this role
    dtype: str  # the type the file gave the column
    n_missing: int
    n_distinct: int  # distinct values besides gaps
    features: list[str] = field(default_factory=list)  # the features made from it, in order
    encoding: dict[str, object] = field(default_factory=dict)  # what was fitted: medians, categories, embedder

    def report(self) -> dict[str, object]:
        """For the ingest report (GET /datasets/{id}): the role without the fitted details."""
        out = asdict(self)
        encoding = out.pop("encoding")
        out["n_features"] = len(out.pop("features"))
        if self.role == "text":  # which embedder made its features: said before training
            out["embedder"] = encoding.get("embedder")
        return out


@dataclass(frozen=True, eq=False)
class EncodedTable:
    X: np.ndarray  # (n, d) float32, every value finite
    feature_names: list[str]  # (d,)
    feature_column: list[str]  # (d,) the column each feature came from
    roles: list[ColumnRole]  # every column of the table, label included, in table order
    # (n,) a text table's texts: when the one feature column is text (a text classification set, which
    # the gallery and exports then show as texts); None when other columns are features too
    texts: list[str] | None = None

    def report(self) -> list[dict[str, object]]:
        return [r.report() for r in self.roles]

    def columns_json(self) -> dict[str, object]:
        """columns.json, saved with the dataset: every role with its fitted encoding and the
        feature -> column map, so each score and attribution traces back to the file."""
        return {"columns": [asdict(r) for r in self.roles], "feature_names": self.feature_names,
                "feature_column": self.feature_column}


def sum_by_column(values: np.ndarray, feature_column: list[str]) -> dict[str, float]:
    """Per original column, the sum of `values` (d,) over its features (one-hot parts, date parts,
    embedding dims, a missing indicator), in the order the columns come: how an attribution per
    feature is said per column of the user's file."""
    if len(values) != len(feature_column):
        raise ValueError(f"{len(values)} values for {len(feature_column)} features")
    sums: dict[str, float] = {}
    for column, value in zip(feature_column, np.asarray(values, dtype=np.float64).tolist()):
        sums[column] = sums.get(column, 0.0) + value
    return sums


def labels_as(class_names: list[str], y: np.ndarray, label_type: pa.DataType) -> pa.Array:
    """The labels `y` (n,) as class names in the label column's uploaded type (integer labels stay
    integers), else as text: how a corrected label is written back into a table's own columns."""
    names = pa.array(class_names, pa.string())
    if not (pa.types.is_string(label_type) or pa.types.is_large_string(label_type)):
        try:
            names = pc.cast(names, label_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return names.take(pa.array(np.asarray(y, np.int64)))


def label_column_of(columns: dict) -> str | None:
    """The label column named in a table's columns.json."""
    return next((str(c["column"]) for c in columns.get("columns", []) if c.get("role") == "label"), None)


def encode_table(name: str, table: pa.Table, options: IngestOptions) -> EncodedTable:
    """Infer each feature column's role and encode the features; InvalidDataset (naming the file and
    column) for an option naming no column, or when no column is usable."""
    _check_options(name, table.column_names, options)
    n = table.num_rows
    roles: list[ColumnRole] = []
    blocks: list[np.ndarray] = []
    feature_column: list[str] = []
    texts: list[list[str]] = []
    columns, emitted = set(table.column_names), set[str]()
    for column in table.column_names:
        col = _decoded(table.column(column))
        if column == options.label_column:
            roles.append(_role(column, "label", "the label column (--label-column)", col))
            continue
        role, reason = infer_role(name, column, col, options, n)
        if role not in FEATURE_ROLES:
            roles.append(_role(column, role, reason, col))
            continue
        block, names, encoding = _ENCODERS[role](name, column, col, options)
        names = _unique(names, column, columns, emitted)
        blocks.append(block)
        feature_column += [column] * len(names)
        roles.append(_role(column, role, reason, col, names, encoding))
        if role == "text":
            texts.append(_strings(col, ""))
    if not blocks:
        said = [f"{r.column!r} is {r.role} ({r.reason})" for r in roles if r.role != "label"]
        found = "; ".join(said[:MAX_SAID]) + (f"; ... ({len(said) - MAX_SAID} more)" if len(said) > MAX_SAID else "")
        raise InvalidDataset(f"{name}: no usable feature column: {found or 'there is only the label column'}; "
                             "name a column with --categorical or --text-column to use it")
    X = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    feature_names = [f for r in roles for f in r.features]
    return EncodedTable(np.ascontiguousarray(X, dtype=np.float32), feature_names, feature_column, roles,
                        texts[0] if len(texts) == len(blocks) == 1 else None)


def _unique(names: list[str], column: str, columns: set[str], emitted: set[str]) -> list[str]:
    """`names` of `column`'s features, with "#2", "#3", ... where one is another column's name or an
    earlier feature's (a column named "a(missing)" beside column a's missing indicator)."""
    out = []
    for feature in names:
        unique, k = feature, 1
        while unique in emitted or (unique != column and unique in columns):
            k += 1
            unique = f"{feature}#{k}"
        emitted.add(unique)
        out.append(unique)
    return out


def _check_options(name: str, columns: list[str], options: IngestOptions) -> None:
    there = ", ".join(repr(c) for c in columns[:50]) + (f", ... ({len(columns) - 50} more)" if len(columns) > 50 else "")
    named = [("--ignore", c) for c in options.ignore] + [("--categorical", c) for c in options.categorical]
    named += [("--text-column", options.text_column)] if options.text_column is not None else []
    for flag, column in named:
        if column not in columns:
            raise InvalidDataset(f"{name}: {flag} names column {column!r}, which the table does not have; "
                                 f"the columns are {there}")
        if column == options.label_column and flag != "--ignore":  # options.py refuses an ignored label
            raise InvalidDataset(f"{name}: {flag} names {column!r}, the label column; it cannot be a feature")
    text = options.text_column
    if text is not None and (text in options.categorical or text in options.ignore):
        flag = "--categorical" if text in options.categorical else "--ignore"
        raise InvalidDataset(f"{name}: column {text!r} is named by both --text-column and {flag}: choose one")


# --- inference -----------------------------------------------------------------------------------


def infer_role(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions, n: int) -> tuple[str, str]:
    """(role, reason) of one feature column of file `name`; the user's options first, then what the
    values look like."""
    t = col.type
    if column in options.ignore:
        return "ignored", "--ignore"
    if column == ACTION_COLUMN and column not in options.categorical:
        return "ignored", "the decision column of a Curate export (keep, relabel, exclude), not a feature"
    if column == options.text_column:
        if not _is_string(t):
            raise InvalidDataset(f"{name}: --text-column {column!r} holds {t} values, not text")
        return "text", "--text-column"
    if column in options.categorical:
        if not (_is_string(t) or _is_scalar(t)):
            raise InvalidDataset(f"{name}: --categorical {column!r} holds {t} values, which cannot be categories")
        return "categorical", f"--categorical; {_categorical_reason(_distinct(col))}"
    if (is_vector_column(t) or (_is_string(t) and is_vector_text(col))) and col.null_count < n:
        return "embedding", vector_reason(col)
    n_valid, k = n - col.null_count, _distinct(col)
    if pa.types.is_null(t) or n_valid == 0:
        return "constant", "every value is missing"
    if k == 1:
        return "constant", f"one value, {_short(_first_valid(col))}, in every row{_gaps(col)}"
    if pa.types.is_boolean(t):
        return "boolean", f"true/false values{_gaps(col, imputed=True)}"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if pa.types.is_integer(t) and k == n_valid and _looks_like_id(column, col, n_valid):
            return "id", f"{k} unique integers{' counting up by 1' if not _ID_NAME.search(column) else ''}: an identifier"
        return "numeric", f"numbers{_gaps(col, imputed=True)}"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime", f"dates{' and times' if pa.types.is_timestamp(t) else ''}{_gaps(col, imputed=True)}"
    if _is_string(t):
        return _infer_string(column, col, n_valid, k)
    return "ignored", f"type {t} cannot be a feature"


def _infer_string(column: str, col: pa.ChunkedArray, n_valid: int, k: int) -> tuple[str, str]:
    lowered = set(pc.unique(pc.utf8_lower(pc.utf8_trim_whitespace(col.drop_null()))).to_pylist())
    if len(lowered) == 2 and any(lowered == pair for pair in _BOOLEAN_PAIRS):
        return "boolean", f"{'/'.join(sorted(lowered, key=lambda v: v not in _TRUE))} values{_gaps(col, imputed=True)}"
    pattern = _number_pattern(col)
    numbers = int(pc.sum(pc.match_substring_regex(col, pattern)).as_py() or 0)
    if numbers >= NUMBER_SHARE * n_valid:
        written = "numbers with a decimal comma" if pattern == _COMMA_NUMBER else "numbers written as text"
        if numbers == n_valid:
            return "numeric", f"{written}{_gaps(col, imputed=True)}"
        rest = pc.unique(pc.filter(col, pc.invert(pc.match_substring_regex(col, pattern)))).drop_null().to_pylist()
        shown = ", ".join(_short(v) for v in rest[:3]) + (", ..." if len(rest) > 3 else "")
        return "numeric", (f"{written}; {n_valid - numbers} other value(s) ({shown}) read as gaps: "
                           "median-imputed, plus a missing indicator")
    found = datetime_format(col)
    if found is not None:
        shown = "ISO 8601" if found == _ISO else found
        both = found.startswith("%d/%m") and datetime_format(col, (found.replace("%d/%m", "%m/%d"),)) is not None
        note = "; day and month are ambiguous: read as day/month" if both else ""
        return "datetime", f"dates written as text ({shown}){note}{_gaps(col, imputed=True)}"
    words = pc.add(pc.count_substring_regex(pc.utf8_trim_whitespace(col.drop_null()), r"\s+"), 1)
    median_words = float(np.median(words.to_numpy())) if len(words) else 0.0
    if median_words >= TEXT_MIN_WORDS and k >= TEXT_MIN_UNIQUE * n_valid:
        return "text", f"free text (median {median_words:g} words, {k} distinct of {n_valid}): embedded"
    if k == n_valid and (n_valid >= ID_MIN_ROWS or _ID_NAME.search(column)):
        return "id", f"{k} unique strings, one per row: an identifier"
    if n_valid >= ID_MIN_ROWS and k >= ID_UNIQUE * n_valid:  # a frequency of ~1/n for almost every row says nothing
        return "id", f"{k} distinct strings in {n_valid} rows: an identifier (--categorical to use it)"
    return "categorical", _categorical_reason(k)


def _number_pattern(col: pa.ChunkedArray) -> str:
    """_COMMA_NUMBER where more values read as numbers with a decimal comma (1,5) than with a point,
    as a `;`-separated file from a European spreadsheet has them; else _NUMBER."""
    point = int(pc.sum(pc.match_substring_regex(col, _NUMBER)).as_py() or 0)
    comma = int(pc.sum(pc.match_substring_regex(col, _COMMA_NUMBER)).as_py() or 0)
    return _COMMA_NUMBER if comma > point else _NUMBER


def _categorical_reason(k: int) -> str:
    if k <= ONEHOT_MAX:
        return f"{k} categories: one-hot, rare ones share {OTHER!r}"
    return f"{k} distinct values (over {ONEHOT_MAX}): frequency encoding"


def _looks_like_id(column: str, col: pa.ChunkedArray, n_valid: int) -> bool:
    if _ID_NAME.search(column):
        return True
    if n_valid < ID_MIN_ROWS or col.null_count:
        return False
    values = col.to_numpy()
    return bool(np.all(np.diff(values) == 1))  # a row counter


def datetime_format(col: pa.ChunkedArray, formats: tuple[str, ...] | None = None) -> str | None:
    """The first of `formats` (default: ISO 8601, then _FORMATS) every value of the string column
    `col` parses in; None if none does."""
    valid = col.drop_null()
    head = valid.slice(0, 1000)  # a format that fails on the first values is not tried on all
    for fmt in formats if formats is not None else (_ISO, *_FORMATS):
        if all(_parses(part, fmt) for part in (head, valid)):
            return fmt
    return None


def _parses(values: pa.ChunkedArray, fmt: str) -> bool:
    if fmt == _ISO:
        try:
            pc.cast(values, pa.timestamp("s"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True
    return not pc.any(pc.is_null(pc.strptime(values, format=fmt, unit="s", error_is_null=True))).as_py()


def _to_timestamp(col: pa.ChunkedArray) -> pa.ChunkedArray:
    fmt = datetime_format(col)
    if fmt == _ISO:
        return pc.cast(col, pa.timestamp("s"))
    return pc.strptime(col, format=fmt, unit="s", error_is_null=True)


# --- encoders: (name, column, col, options) -> ((n, k) float32, k feature names, fitted encoding) ---


def _encode_numeric(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                    ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    if _is_string(col.type):  # numbers written as text: anything else is a gap
        pattern = _number_pattern(col)
        col = pc.utf8_trim_whitespace(pc.if_else(pc.match_substring_regex(col, pattern), col, None))
        col = pc.cast(pc.replace_substring(col, ",", ".") if pattern == _COMMA_NUMBER else col, pa.float64())
    values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)  # gaps -> NaN
    _check_finite(name, column, values)
    return _imputed(column, [column], values[:, None], {"method": "value"})


def _encode_boolean(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                    ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    if _is_string(col.type):
        col = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), pa.array(sorted(_TRUE)))
        col = pc.if_else(pc.is_null(col), None, col)
    values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return _imputed(column, [column], values[:, None], {"method": "0/1", "true": "true, yes, y or t"})


def _encode_datetime(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                     ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    if _is_string(col.type):
        col = _to_timestamp(col)
    parts = {"year": pc.year(col), "month": pc.month(col), "dayofweek": pc.day_of_week(col)}
    if pa.types.is_timestamp(col.type):
        hours = pc.hour(col)
        timed = pc.any(pc.not_equal(pc.add(pc.multiply(hours, 3600), pc.add(pc.multiply(pc.minute(col), 60),
                                                                          pc.second(col))), 0)).as_py()
        if timed:
            parts["hour"] = hours
    values = np.stack([p.cast(pa.float64()).to_numpy(zero_copy_only=False) for p in parts.values()], axis=1)
    return _imputed(column, [f"{column}.{p}" for p in parts], values, {"method": "parts", "parts": list(parts)})


def _encode_categorical(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                        ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    strings = pc.fill_null(col if _is_string(col.type) else pc.cast(col, pa.string()), MISSING)
    k = _distinct(strings)
    if k > ONEHOT_MAX:
        counts = pc.value_counts(strings)
        share = counts.field("counts").to_numpy() / len(strings)
        index = pc.index_in(strings, counts.field("values")).to_numpy(zero_copy_only=False)
        top = np.argsort(-share, kind="stable")[:20]
        values = counts.field("values").to_pylist()
        return (share[index].astype(np.float32)[:, None], [f"{column}(frequency)"],
                {"method": "frequency", "n_categories": k, "top": {values[i]: round(float(share[i]), 6) for i in top}})
    from sklearn.preprocessing import OneHotEncoder

    min_rows = max(2, math.ceil(OTHER_SHARE * len(strings)))
    encoder = OneHotEncoder(min_frequency=min_rows, handle_unknown="infrequent_if_exist", sparse_output=False,
                            dtype=np.float32)
    block = encoder.fit_transform(np.asarray(strings.to_pylist(), dtype=object)[:, None])
    rare = list(encoder.infrequent_categories_[0]) if encoder.infrequent_categories_[0] is not None else []
    kept = [str(c) for c in encoder.categories_[0] if c not in set(rare)]
    names = [f"{column}={c}" for c in kept] + ([f"{column}={OTHER}"] if rare else [])
    return block, names, {"method": "one-hot", "categories": kept, "other": [str(c) for c in rare],
                          "min_rows": min_rows}


def _encode_text(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                 ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    from service.ingest.text import embed_texts

    try:
        X, report = embed_texts(_strings(col, ""), options.embedder)
    except InvalidDataset as exc:
        raise InvalidDataset(f"{name}: column {column!r}: {exc.message}") from None
    return X.astype(np.float32, copy=False), [f"{column}[{j}]" for j in range(X.shape[1])], {"method": "embedding",
                                                                                             **report}


def _encode_embedding(name: str, column: str, col: pa.ChunkedArray, options: IngestOptions
                      ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    return encode_vectors(name, column, vectors_from_text(name, column, col) if _is_string(col.type) else col)


_ENCODERS = {"numeric": _encode_numeric, "boolean": _encode_boolean, "datetime": _encode_datetime,
             "categorical": _encode_categorical, "text": _encode_text, "embedding": _encode_embedding}


def _imputed(column: str, names: list[str], values: np.ndarray, encoding: dict[str, object]
             ) -> tuple[np.ndarray, list[str], dict[str, object]]:
    """values (n, k) float64 with NaN gaps -> median-filled, plus one `<column>(missing)` indicator
    when there are gaps."""
    gaps = np.isnan(values).any(axis=1)
    if not gaps.any():
        return values.astype(np.float32), names, encoding
    medians = np.nanmedian(values[~gaps], axis=0) if (~gaps).any() else np.zeros(values.shape[1])
    filled = np.where(np.isnan(values), medians, values)
    block = np.concatenate([filled, gaps[:, None]], axis=1).astype(np.float32)
    return block, names + [f"{column}{MISSING}"], {**encoding, "median": [float(m) for m in medians],
                                                   "n_missing": int(gaps.sum())}


def _check_finite(name: str, column: str, values: np.ndarray) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > np.finfo(np.float32).max)
    if bad.any():
        i = int(np.argmax(bad))
        problem = "is infinite" if np.isinf(values[i]) else f"is {values[i]:g}, beyond float32"
        raise InvalidDataset(f"{name}: row {i}, column {column!r} {problem}")


# --- small helpers -------------------------------------------------------------------------------


def _role(column: str, role: str, reason: str, col: pa.ChunkedArray, features: list[str] | None = None,
          encoding: dict[str, object] | None = None) -> ColumnRole:
    return ColumnRole(column, role, reason, str(col.type), int(col.null_count), _distinct(col),
                      list(features or []), dict(encoding or {}))


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _is_scalar(t: pa.DataType) -> bool:
    return any(f(t) for f in (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean,
                              pa.types.is_timestamp, pa.types.is_date))  # fmt: skip


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _distinct(col: pa.ChunkedArray) -> int:
    """Distinct values besides gaps; 0 for types pyarrow cannot count (lists, structs: ignored anyway)."""
    if pa.types.is_null(col.type):
        return 0
    try:
        return int(pc.count_distinct(col).as_py())
    except pa.ArrowNotImplementedError:
        return 0


def _first_valid(col: pa.ChunkedArray) -> object:
    return col.drop_null()[0].as_py()


def _strings(col: pa.ChunkedArray, fill: str) -> list[str]:
    return [fill if v is None else str(v) for v in col.to_pylist()]


def _gaps(col: pa.ChunkedArray, imputed: bool = False) -> str:
    if not col.null_count:
        return ""
    return f"; {col.null_count} gap(s){': median-imputed, plus a missing indicator' if imputed else ''}"


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
