"""One loader for plugins: a spec -> the callable it names.

A spec is either
- a name registered as an entry point of a group (`auxnas.datasets`, `auxnas.evaluators`), which
  an installed package declares in its `pyproject.toml`:

      [project.entry-points."auxnas.datasets"]
      my-scans = "my_package.data:make_dataset"

- or `python:package.module:callable`, imported by module path (the module must be importable
  in every Ray worker: installed, or on `PYTHONPATH`).

Every error is a `PluginError`, one line naming the spec.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

DATASETS = "auxnas.datasets"
EVALUATORS = "auxnas.evaluators"
PYTHON_PREFIX = "python:"


class PluginError(ValueError):
    """A spec that names nothing callable; `str(err)` is one line naming the spec."""


def is_python_spec(spec: str) -> bool:
    """`python:package.module:callable` (the form, not whether it imports)."""
    if not spec.startswith(PYTHON_PREFIX) or spec.count(":") != 2:
        return False
    _, module_name, attr = spec.split(":")
    return bool(module_name) and bool(attr)


@functools.cache
def registered(group: str) -> dict[str, EntryPoint]:
    """The entry points of `group` by name (read once per process: a newly installed plugin
    is seen after a restart)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(registered(group))


def load_callable(spec: str, group: str | None = None) -> Callable[..., Any]:
    """The callable `spec` names: a `python:` spec, or a name registered in `group`."""
    if is_python_spec(spec):
        _, module_name, attr = spec.split(":")
        return _checked(spec, _import_attr(spec, module_name, attr))
    if spec.startswith(PYTHON_PREFIX):
        raise PluginError(f"{spec!r} is not of the form python:package.module:callable")
    if group is None:
        raise PluginError(f"{spec!r} is not of the form python:package.module:callable")
    entry = registered(group).get(spec)
    if entry is None:
        known = ", ".join(names(group)) or "none registered"
        raise PluginError(f"{spec!r} is not a registered {_what(group)} (known: {known})")
    try:
        fn = entry.load()
    except Exception as e:  # a broken plugin package: say which one and why, in one line
        raise PluginError(
            f"{spec!r} ({entry.value}): loading raised {type(e).__name__}: {_line(e)}"
        ) from None
    return _checked(spec, fn)


def _import_attr(spec: str, module_name: str, attr: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise PluginError(
            f"{spec!r}: cannot import module {e.name!r} (is it installed or on PYTHONPATH?)"
        ) from None
    except Exception as e:  # the module's own top-level code failed
        raise PluginError(
            f"{spec!r}: importing {module_name!r} raised {type(e).__name__}: {_line(e)}"
        ) from None
    if not hasattr(module, attr):
        raise PluginError(f"{spec!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _checked(spec: str, fn: Any) -> Callable[..., Any]:
    if not callable(fn):
        raise PluginError(f"{spec!r}: {type(fn).__name__} is not callable")
    return fn


def _what(group: str) -> str:
    return {DATASETS: "dataset plugin", EVALUATORS: "evaluator"}.get(group, f"plugin of {group}")


def _line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
