"""Tables on the terminal, one rule for all commands: a table fits an 80-column terminal and
never cuts a figure.

A figure column does not wrap (rich would otherwise end it with `…` when the terminal is
narrow); text columns and titles wrap instead. A cell that holds several figures separates them
with spaces, so that it wraps between figures and never inside one.
"""

from __future__ import annotations

from typing import Any

WIDTH = 80  # the narrowest terminal every table is laid out for


def new_table(title: str, compact: bool = False) -> Any:
    """A table with `title`; `compact` draws no vertical lines (two characters per column
    instead of three), for tables of many columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD)


def text_column(table: Any, header: str) -> None:
    """A column of names or several space-separated figures: it may wrap between words."""
    table.add_column(header, overflow="fold")


def figure_column(table: Any, header: str) -> None:
    """A column of one figure per line: never wrapped, never cut."""
    table.add_column(header, justify="right", no_wrap=True)


def mean_std(summary: dict[str, float], digits: int = 4) -> str:
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def console(stderr: bool = False) -> Any:
    """The terminal's console (80 columns when the output is not a terminal)."""
    from rich.console import Console

    return Console(stderr=stderr)
