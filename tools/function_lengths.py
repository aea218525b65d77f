"""Prints the longest functions of the product code (methods and nested functions each on
their own line, a function's length counting its nested ones) and how many exceed the limit.

    .venv/bin/python tools/function_lengths.py [LIMIT] [ROWS]     # default 60 lines, 15 rows
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "cli", "controller", "db", "evaluator", "search_space", "worker")


def function_lengths(root: Path = ROOT) -> list[tuple[int, str, str]]:
    """(lines, file:line, qualified name) of every product function, longest first."""
    rows = []
    for pkg in PRODUCT:
        for path in sorted((root / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            stack = [(ast.parse(path.read_text()), "")]
            while stack:
                node, prefix = stack.pop()
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        where = f"{path.relative_to(root)}:{child.lineno}"
                        rows.append((child.end_lineno - child.lineno + 1, where, prefix + child.name))
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        stack.append((child, f"{prefix}{child.name}."))
    return sorted(rows, key=lambda r: (-r[0], r[1]))


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    shown = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    rows = function_lengths()
    print(f"{len(rows)} product functions; {sum(1 for r in rows if r[0] > limit)} over {limit} lines")
    for lines, where, name in rows[:shown]:
        print(f"{lines:4d}  {name:40s} {where}")
