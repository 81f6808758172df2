"""Read a table file (CSV, JSON Lines, Parquet) into a pyarrow Table, within the ingest limits, and
say how it was read.

A CSV's delimiter (`,` `;` tab `|`) is sniffed from its first 64 KiB and its encoding detected:
UTF-16 with its byte-order mark; else UTF-8 (with or without one), else Windows-1252, else Latin-1
(every byte is a Latin-1 character, so that last one always reads). What was detected is returned for the ingest
report, so a user whose `;` file was read as one column can see why.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from service.errors import DatasetTooLarge, InvalidDataset
from service.limits import IngestLimits

DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
_DELIMITER_NAMES = {"\t": "tab"}
JSON_BLOCK_BYTES = 16 * 1024 * 1024  # pyarrow reads JSON Lines in blocks; one line must fit in one
MAX_MIXED_JSON_BYTES = 256 * 1024 * 1024  # a JSON Lines file with mixed-type keys is read line by line up to this
_MIXED_JSON = re.compile(r"changed from \w+ to \w+")


def read_csv(path: Path, limits: IngestLimits) -> tuple[pa.Table, dict[str, str]]:
    """The table and {"delimiter": ..., "encoding": ...} as detected."""
    _check_size(path, limits)
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # "Unicode text" from Excel
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8", "cp1252", "latin-1"]
    sample = head.decode(candidates[0].replace("-sig", ""), errors="replace").lstrip("\ufeff")
    delimiter = sniff_delimiter(sample)
    for encoding in candidates:
        table = _parse_csv(path, delimiter, "utf8" if encoding.startswith("utf-8") else encoding)
        if table is not None and _is_text(table):
            break
    else:  # Latin-1 decodes any bytes: only UTF-16 gets here
        raise InvalidDataset(f"{path.name}: the file starts with a UTF-16 byte-order mark but is not UTF-16 text")
    return table, {"delimiter": _DELIMITER_NAMES.get(delimiter, delimiter), "encoding": encoding}


def _is_text(table: pa.Table) -> bool:
    """False when the bytes were not in the encoding read: pyarrow keeps such columns as binary, and
    a header that does not decode fails as its name is read."""
    try:
        table.column_names  # noqa: B018  (reading the names decodes them)
    except UnicodeDecodeError:
        return False
    return not any(pa.types.is_binary(f.type) for f in table.schema)


def sniff_delimiter(sample: str) -> str:
    """The delimiter of the CSV whose start is `sample`: csv.Sniffer restricted to DELIMITERS, else
    the one that splits the first lines into the same number (> 1) of fields, else ','."""
    lines = sample.splitlines()
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may end inside a line
    text = "\n".join(lines[:200])
    try:
        found = csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
        if found in DELIMITERS and _fields(lines[0], found) > 1:
            return found
    except csv.Error:
        pass
    best, best_fields = ",", 1
    for d in DELIMITERS:
        counts = {_fields(line, d) for line in lines[:50] if line.strip()}
        if len(counts) == 1 and (n := counts.pop()) > best_fields:
            best, best_fields = d, n
    return best


def _fields(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def _parse_csv(path: Path, delimiter: str, encoding: str) -> pa.Table | None:
    """None when the bytes do not decode as `encoding`."""
    try:
        return pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding),
                              parse_options=pacsv.ParseOptions(delimiter=delimiter),
                              convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except UnicodeDecodeError:
        return None
    except (pa.ArrowException, OSError) as e:
        if "UTF8" in str(e) or "utf-8" in str(e).lower():
            return None
        raise InvalidDataset(f"{path.name}: cannot parse the CSV ({e})") from e


def read_jsonl(path: Path, limits: IngestLimits) -> pa.Table:
    """JSON Lines: one object per line, the keys are the columns. pyarrow reads it in blocks; a key
    whose values mix numbers and strings (which pyarrow refuses) is read line by line, as text."""
    _check_size(path, limits)
    with open(path, "rb") as f:
        start = f.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    if start.startswith(b"["):
        raise InvalidDataset(f"{path.name}: a JSON array, not JSON Lines; write one JSON object per line "
                             "(e.g. pandas' to_json(orient='records', lines=True))")
    try:
        return pajson.read_json(path, read_options=pajson.ReadOptions(block_size=JSON_BLOCK_BYTES))
    except (pa.ArrowException, OSError) as e:
        if _MIXED_JSON.search(str(e)) and path.stat().st_size <= MAX_MIXED_JSON_BYTES:
            return _read_jsonl_as_text(path)
        raise InvalidDataset(f"{path.name}: cannot parse the JSON Lines ({e}); expected one JSON object "
                             "per line") from e


def _read_jsonl_as_text(path: Path) -> pa.Table:
    """Every line through json.loads; keys whose values have more than one JSON type become strings
    (columns.py then reads mostly-number strings as numbers, with the rest as gaps)."""
    rows: list[dict[str, object]] = []
    kinds: dict[str, set[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidDataset(f"{path.name}: row {len(rows)} (line {i + 1}) is not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InvalidDataset(f"{path.name}: row {len(rows)} (line {i + 1}) is a JSON "
                                     f"{type(row).__name__}, not an object")
            for key, value in row.items():
                if value is not None:
                    kinds.setdefault(key, set()).add(_json_kind(value))
            rows.append(row)
    mixed = {key for key, seen in kinds.items() if len(seen) > 1}
    for row in rows:
        for key in mixed & row.keys():
            value = row[key]
            row[key] = None if value is None else value if isinstance(value, str) else json.dumps(value)
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError) as e:
        raise InvalidDataset(f"{path.name}: cannot read the JSON Lines as a table ({e})") from e


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def read_parquet(path: Path, limits: IngestLimits) -> pa.Table:
    try:
        with pq.ParquetFile(path) as pf:
            meta = pf.metadata
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if size > limits.max_archive_bytes:
                raise DatasetTooLarge(
                    f"{path.name}: {size:,} bytes of uncompressed data; "
                    f"the limit is {limits.max_archive_bytes:,} bytes"
                )
            return pf.read()
    except (pa.ArrowException, OSError) as e:
        raise InvalidDataset(f"{path.name}: cannot read the Parquet file ({e})") from e


def _check_size(path: Path, limits: IngestLimits) -> None:
    size = path.stat().st_size
    if size == 0:
        raise InvalidDataset(f"{path.name}: the file is empty; no data rows")
    if size > limits.max_archive_bytes:
        raise DatasetTooLarge(f"{path.name}: {size:,} bytes; the limit is {limits.max_archive_bytes:,} bytes")
