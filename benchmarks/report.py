"""Small helpers every benchmark report shares."""

import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table; a "|" inside a cell is escaped, so it stays one cell."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(cells) for cells in body])


def write_report(out: Path, stem: str, report: dict, md: list[str]) -> None:
    """<out>/<stem>.json (the report, indented) and <out>/<stem>.md (the lines), creating out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")


def write_named_report(out: Path, stem: str, name: str, report: dict, md: list[str]) -> None:
    """write_report to <out>/<stem>-<name> (or <stem> without a name) and print the markdown."""
    write_report(out, f"{stem}-{name}" if name else stem, report, md)
    print("\n".join(md))


def print_tables(console: Console, tables: Iterable[tuple[str, list[str], list[list[str]]]]) -> None:
    """Each (title, header, rows) as a rich table."""
    from rich.table import Table

    for title, header, rows in tables:
        table = Table(title=title)
        for h in header:
            table.add_column(h)
        for row in rows:
            table.add_row(*row)
        console.print(table)
