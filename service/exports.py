"""Write an Arrow table as CSV, Parquet or JSON lines."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.errors import CurationError

FORMATS = ("csv", "parquet", "jsonl")


class InvalidExport(CurationError):
    status_code = 422
    code = "invalid_export"


def write_table(table: pa.Table, fmt: str, path: Path) -> Path:
    """Write to `path` via a temporary file, so a failed export leaves no half file."""
    if fmt not in FORMATS:
        raise InvalidExport(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if fmt == "csv":
        pacsv.write_csv(table, tmp)
    elif fmt == "parquet":
        pq.write_table(table, tmp)
    else:
        with tmp.open("w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, allow_nan=False, default=str) + "\n")
    tmp.replace(path)
    return path
