"""Prints what `make lock` resolves: pyproject.toml's dependencies and dev extra without torch
(the CPU or CUDA build is the installer's choice, or the base image's), plus pip and setuptools
(the venv's installer and the project's build backend are pinned too)."""

import re
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
requirements = project["dependencies"] + project["optional-dependencies"]["dev"] + ["pip", "setuptools"]
print("\n".join(r for r in requirements if re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0] != "torch"))
