"""Small helpers every benchmark report shares."""

from collections.abc import Iterable

from rich.console import Console


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


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
