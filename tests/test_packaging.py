"""The wheel must carry every package: pyproject lists them explicitly."""

from __future__ import annotations

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_package_is_listed_in_pyproject() -> None:
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    match = re.search(r"^packages\s*=\s*(\[.*?\])", text, re.M | re.S)
    assert match, "pyproject.toml lists no packages"
    listed = set(ast.literal_eval(match.group(1)))
    found = {os.path.relpath(d, ROOT).replace(os.sep, ".")
             for d, _, files in os.walk(os.path.join(ROOT, "uring")) if "__init__.py" in files}
    assert listed == found


def test_runtime_imports_only_the_standard_library() -> None:
    import sys

    stdlib = set(getattr(sys, "stdlib_module_names", ())) or None
    for d, _, files in os.walk(os.path.join(ROOT, "uring")):
        for name in files:
            if not name.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(d, name)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    top = mod.split(".")[0]
                    assert top == "uring" or stdlib is None or top in stdlib or top == "__future__", \
                        f"{name} imports {mod}"
