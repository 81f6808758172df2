"""How a dataset was read (DatasetOut.ingest_report, one key per reader), said in a few plain lines
for the terminal: `curate score` prints them before training, so a user sees a column read as an
identifier, a `;` delimiter or a resize while the job runs, not after. The dashboard shows the same
report as a table (service/web/templates/ingest_report.html)."""

from collections import Counter
from collections.abc import Mapping

from service.ingest.columns import FEATURE_ROLES

MAX_LEFT_OUT = 10  # left-out columns named one by one; more are counted


def describe_ingest(report: Mapping[str, object]) -> list[str]:
    """One line per reader: the file (delimiter, encoding), the columns (role counts, the label, each
    column left out and why), then the others (images, text, features, embeddings) in name order."""
    lines = []
    file = report.get("file")
    if isinstance(file, Mapping):
        lines.append(f"file: delimiter {_delimiter(str(file.get('delimiter')))}, encoding {file.get('encoding')}")
    columns = report.get("columns")
    if isinstance(columns, list):
        lines.append(describe_columns(columns))
    for key in sorted(k for k in report if k not in ("file", "columns")):
        value = report[key]
        said = _SAYERS.get(key, _generic)(value) if isinstance(value, Mapping) else str(value)
        lines.append(f"{key}: {said}")
    return lines


def describe_columns(columns: list) -> str:
    """'columns: 2 numeric, 1 categorical -> 7 features; label 'label'; left out: 'id' (id: ...); gaps:
    'age' (3 gap(s): median-imputed, ...)'."""
    counts = Counter(c["role"] for c in columns if c["role"] in FEATURE_ROLES)
    n_features = sum(int(c.get("n_features", 0)) for c in columns)
    roles = ", ".join(f"{counts[r]} {r}{_embedders(columns, r)}" for r in FEATURE_ROLES if counts[r])
    parts = [f"columns: {roles or 'none used'} -> {n_features} features"]
    parts += [f"label {c['column']!r}" for c in columns if c["role"] == "label"]
    left_out = [c for c in columns if c["role"] not in FEATURE_ROLES and c["role"] != "label"]
    if left_out:
        named = ", ".join(f"{c['column']!r} ({c['role']}: {c['reason']})" for c in left_out[:MAX_LEFT_OUT])
        more = f", ... ({len(left_out) - MAX_LEFT_OUT} more)" if len(left_out) > MAX_LEFT_OUT else ""
        parts.append(f"left out: {named}{more}")
    gappy = [c for c in columns if c["role"] in FEATURE_ROLES and "gap" in str(c.get("reason", ""))]
    if gappy:  # a typo such as 'abc' in a numeric column becomes a gap: said here, not only in the dashboard
        named = ", ".join(f"{c['column']!r} ({_gaps_said(str(c['reason']))})" for c in gappy[:MAX_LEFT_OUT])
        more = f", ... ({len(gappy) - MAX_LEFT_OUT} more)" if len(gappy) > MAX_LEFT_OUT else ""
        parts.append(f"gaps: {named}{more}")
    return "; ".join(parts)


def _gaps_said(reason: str) -> str:
    """'numbers; 1 gap(s): median-imputed, plus a missing indicator' -> '1 gap(s): median-imputed, ...':
    the reason from its first mention of gaps or other values."""
    starts = [i for i in (reason.find(" gap"), reason.find(" other value")) if i >= 0]
    cut = reason.rfind("; ", 0, min(starts)) if starts else -1
    return reason[cut + 2:] if cut >= 0 else reason


def _embedders(columns: list, role: str) -> str:
    names = sorted({str(c["embedder"]) for c in columns if c["role"] == role and c.get("embedder")})
    return f" (embedder {', '.join(names)})" if names else ""


def _delimiter(d: str) -> str:
    return "tab" if d in ("\t", "tab") else repr(d)


def _images(r: Mapping[str, object]) -> str:
    line = f"{r.get('n_images')} images, {r.get('why')}; {r.get('channels_why')}"
    skipped = r.get("skipped")
    if isinstance(skipped, Mapping) and skipped.get("n"):
        n = int(str(skipped["n"]))
        files = skipped.get("files")
        shown = [f["file"] for f in (files if isinstance(files, list) else [])[:MAX_LEFT_OUT] if isinstance(f, Mapping)]
        more = f", ... ({n - len(shown)} more)" if n > len(shown) else ""
        line += f"; left out {n} unreadable file(s) (--skip-unreadable): {', '.join(map(repr, shown))}{more}"
    return line


def _text(r: Mapping[str, object]) -> str:
    n = f"{r['n_texts']} texts, " if "n_texts" in r else ""
    return f"{n}embedder {r.get('embedder')} ({r.get('dims')} dims)"


def _features(r: Mapping[str, object]) -> str:
    return f"{r.get('backbone')} ({r.get('dims')} dims, on {r.get('device')})"


def _embeddings(r: Mapping[str, object]) -> str:
    return f"array {r.get('array')!r}, {r.get('n_vectors')} vectors of {r.get('dims')} numbers, taken as features"


def _generic(r: Mapping[str, object]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(r.items()))


_SAYERS = {"images": _images, "text": _text, "features": _features, "embeddings": _embeddings}
