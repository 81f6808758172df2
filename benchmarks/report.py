"""Small helpers every benchmark report shares."""

from collections.abc import Iterable

from rich.console import Console


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table; a "|" inside a cell is escaped, so it stays one cell."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(cells) for cells in body])


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
