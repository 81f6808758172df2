"""Bring-your-own embeddings (issue 16, item 5): vectors a user computed elsewhere (a CLIP or a
sentence model of their own) are taken as features as they are, so Curate's ensemble scores them
like any table. Three inputs: a Parquet or JSON Lines column whose every value is a list of the same
number of floats (role `embedding`, features `<col>[0]` .. `<col>[d-1]`); a CSV column whose every
value is such a list written as text, `[0.1, -2.5, ...]` (Curate's CSV exports of such a column,
pandas' to_csv of lists; numpy's `[0.1 -2.5 ...]` too); and an NPZ whose `embeddings` array (n, d)
stands where X would (formats.py).

A vector column is refused, naming the column and the row, when one row's length differs from the
first row's (ragged vectors are no embedding), when a row has no vector, and when a number inside
is NaN, infinite or beyond float32: an embedding has no gaps to impute.
Pure: pyarrow and numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.errors import InvalidDataset

NPZ_KEY = "embeddings"  # the NPZ array of vectors, in place of X
_CHECK_BLOCK = 1 << 22  # numbers checked at a time (32 MiB as float64)
_VECTOR_TEXT = r"^\s*\[[-+0-9.eE,\sinfatyINFATY]*[0-9][-+0-9.eE,\sinfatyINFATY]*\]\s*$"  # [0.1, -2e-3, nan]


def is_vector_column(t: pa.DataType) -> bool:
    """A list type of floats: a column that can hold embedding vectors. Lists of integers are more
    often tags or ids than vectors, and stay ignored."""
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        return False
    return pa.types.is_floating(t.value_type)


def is_vector_text(col: pa.ChunkedArray) -> bool:
    """A text column whose every value (and at least one) is a bracketed list of numbers."""
    valid = col.drop_null()
    if not len(valid) or not str(valid[0].as_py()).lstrip().startswith("["):  # most text columns stop here
        return False
    return bool(pc.all(pc.match_substring_regex(valid, _VECTOR_TEXT)).as_py())


def vectors_from_text(name: str, column: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    """'[0.1, -2.5]' (or numpy's '[0.1 -2.5]') -> [0.1, -2.5] as list<double>; a number that does not
    read is refused naming its row."""
    parts = pc.split_pattern_regex(pc.utf8_trim(col, "[] \t\r\n"), r"[,\s]+")
    try:
        return parts.cast(pa.list_(pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for i, row in enumerate(parts.to_pylist()):
            for j, text in enumerate(row or []):
                try:
                    float(text)
                except ValueError:
                    raise InvalidDataset(f"{name}: row {i}, column {column!r}: number {j} of the vector, {text!r}, "
                                         "is not a number") from None
        raise


def vector_reason(col: pa.ChunkedArray) -> str:
    """The role's one-line reason, with the length of the first vector."""
    first = col.drop_null()
    if not len(first):
        return "lists of numbers (an embedding): each number is a feature"
    value = first[0].as_py()
    if isinstance(value, str):
        d = len([p for p in value.strip("[] \t\r\n").replace(",", " ").split() if p])
        return f"lists of {d} numbers written as text (an embedding): each number is a feature"
    return f"lists of {len(value)} numbers (an embedding): each number is a feature"


def encode_vectors(name: str, column: str, col: pa.ChunkedArray) -> tuple[np.ndarray, list[str], dict[str, object]]:
    """(n, d) float32 of the vectors in `col`, the feature names `<column>[j]`, and the fitted encoding.
    Chunk by chunk into one float32 array: the column is never combined (a copy) nor held as float64."""
    if col.null_count:
        i = pc.index(pc.is_null(col), True).as_py()
        raise InvalidDataset(f"{name}: row {i}, column {column!r} has no vector; every row of an embedding "
                             "column needs one")
    lengths = pc.list_value_length(col)
    d = int(lengths[0].as_py())
    if d == 0:
        raise InvalidDataset(f"{name}: row 0, column {column!r} holds an empty list; embedding vectors need "
                             "at least one number")
    ragged = pc.not_equal(lengths, d)
    if pc.any(ragged).as_py():
        i = pc.index(ragged, True).as_py()
        raise InvalidDataset(f"{name}: column {column!r} holds vectors of different lengths: row 0 has {d} "
                             f"numbers, row {i} has {lengths[i].as_py()}; an embedding column needs one length")
    X = np.empty((len(col), d), dtype=np.float32)
    row = 0
    for chunk in col.chunks:
        flat = pc.list_flatten(chunk)  # the chunk's numbers, row after row
        _check_numbers(name, column, flat, d, row)
        X[row:row + len(chunk)] = flat.cast(pa.float32()).to_numpy(zero_copy_only=False).reshape(len(chunk), d)
        row += len(chunk)
    return X, [f"{column}[{j}]" for j in range(d)], {"method": "vectors as given", "dims": d}


def _check_numbers(name: str, column: str, flat: pa.Array, d: int, first_row: int) -> None:
    """Refuse at the first number that is missing, NaN, infinite or beyond float32, a block at a time
    (a 1,000,000 x 512 column never has a float64 copy of itself in memory); rows count from `first_row`."""
    limit = float(np.finfo(np.float32).max)
    for start in range(0, len(flat), _CHECK_BLOCK):
        part = flat.slice(start, _CHECK_BLOCK).cast(pa.float64())
        ok = pc.fill_null(pc.and_(pc.is_finite(part), pc.less_equal(pc.abs(part), limit)), False)
        if not pc.all(ok).as_py():
            k = start + pc.index(ok, False).as_py()
            value = flat[k].as_py()
            problem = ("missing" if value is None else "NaN" if math.isnan(value) else
                       "infinite" if math.isinf(value) else f"{value:g}, beyond float32")
            raise InvalidDataset(f"{name}: row {first_row + k // d}, column {column!r}: number {k % d} of the "
                                 f"vector is {problem}")


def check_vectors(name: str, values: np.ndarray, where: str, unit: str) -> np.ndarray:  # (n, d) -> float32
    """`values` as float32, refused at the first row holding a number that is NaN, infinite or beyond float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        X = np.asarray(values).astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        v = float(np.asarray(values)[i, j])
        problem = "NaN (or missing)" if np.isnan(v) else "infinite" if np.isinf(v) else f"{v:g}, beyond float32"
        raise InvalidDataset(f"{name}: {unit} {i}, {where}: number {j} of the vector is {problem}")
    return X
