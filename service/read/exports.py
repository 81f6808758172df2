"""Write an Arrow table as CSV, Parquet or JSON lines."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.errors import InvalidExport
from service.fsutil import atomic_path

FORMATS = ("csv", "parquet", "jsonl")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (CSV injection)


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Text cells that a spreadsheet would run as a formula, prefixed with ' (CSV exports only:
    Parquet and JSON lines keep the values as they are). Numbers are left alone."""
    import pyarrow.compute as pc

    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            risky = pc.fill_null(pc.starts_with(col, FORMULA_STARTS[0]), False)
            for start in FORMULA_STARTS[1:]:
                risky = pc.or_(risky, pc.fill_null(pc.starts_with(col, start), False))
            quote, empty = pa.scalar("'", col.type), pa.scalar("", col.type)  # large_string: texts
            col = pc.if_else(risky, pc.binary_join_element_wise(quote, col, empty), col)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def write_table(table: pa.Table, fmt: str, path: Path) -> Path:
    """Write to `path` via a temporary file, so a failed export leaves no half file."""
    if fmt not in FORMATS:
        raise InvalidExport(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "csv":
            pacsv.write_csv(neutralise_formulas(table), tmp)
        elif fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            with tmp.open("w", encoding="utf-8") as f:
                for row in table.to_pylist():
                    f.write(json.dumps(row, allow_nan=False, default=str) + "\n")
    return path
