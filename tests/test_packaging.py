"""What a package index shows and a user of the installed package sees.

The wheel must carry every package (pyproject lists them explicitly), the
LICENSE and its SPDX expression, the per-version classifiers; the ``uring``
command names itself ``uring`` and has ``--version``; the README has no
links a package index page cannot follow.  Offline and fast: pyproject.toml
is read as text (no build, no network; ``tomllib`` is 3.11+).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from typing import Any, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]


def pyproject() -> str:
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return f.read()


def project_key(key: str) -> Any:
    """``key = value`` of pyproject's [project] table, value a TOML string or array
    of strings (which are Python literals too)."""
    table = re.search(r"^\[project\]\n(.*?)(?=^\[)", pyproject(), re.M | re.S)
    assert table, "pyproject.toml has no [project] table"
    match = re.search(rf"^{re.escape(key)}\s*=\s*(\[.*?\]|\"[^\"\n]*\")", table.group(1), re.M | re.S)
    assert match, f"[project] has no {key}"
    return ast.literal_eval(match.group(1))


def run_uring(*args: str, command: Optional[List[str]] = None) -> "subprocess.CompletedProcess[str]":
    """``python3 -m uring ARGS`` (or ``COMMAND ARGS``) on this tree."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    argv = [*(command or [sys.executable, "-m", "uring"]), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def expected_version() -> str:
    from importlib import metadata

    import uring

    try:
        return metadata.version("uring")
    except metadata.PackageNotFoundError:
        return uring.__version__


def test_every_package_is_listed_in_pyproject() -> None:
    text = pyproject()
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
            typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                           and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                           for stmt in block.body for n in ast.walk(stmt)}
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue  # only for the type checker: never imported at run time
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


def test_license_file_and_spdx_expression() -> None:
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the uring developers" in text
    assert "Permission is hereby granted, free of charge" in text
    assert project_key("license") == "MIT"
    assert project_key("license-files") == ["LICENSE"]
    # the SPDX string form of `license` (PEP 639) needs setuptools 77
    requires = re.search(r"^requires\s*=\s*(\[.*?\])", pyproject(), re.M | re.S)
    assert requires
    (setuptools,) = [r for r in ast.literal_eval(requires.group(1)) if r.startswith("setuptools")]
    bound = re.fullmatch(r"setuptools\s*>=\s*(\d+)(?:\.\d+)*", setuptools)
    assert bound and int(bound.group(1)) >= 77, setuptools


def test_classifiers_and_keywords() -> None:
    classifiers = project_key("classifiers")
    assert len(set(classifiers)) == len(classifiers)
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers, version
    listed = {c.rsplit(" :: ", 1)[1] for c in classifiers
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert listed == set(PYTHONS)  # no version listed that is not tested, none missing
    assert project_key("requires-python") == f">={PYTHONS[0]}"
    for wanted in ["Framework :: AsyncIO", "Topic :: System :: Operating System Kernels :: Linux",
                   "Intended Audience :: Developers", "Development Status :: 4 - Beta",
                   "Operating System :: POSIX :: Linux", "Typing :: Typed"]:
        assert wanted in classifiers, wanted
    assert {"io_uring", "aio", "asyncio", "linux", "ring"} <= set(project_key("keywords"))


def test_installed_metadata_agrees_with_pyproject() -> None:
    """Where this tree is installed (pip install -e .), its metadata carries the
    license expression and the classifiers; otherwise there is nothing to read."""
    from importlib import metadata

    try:
        dist = metadata.distribution("uring")
    except metadata.PackageNotFoundError:
        pytest.skip("uring is not installed")
    if dist.version != project_key("version") or "License-Expression" not in dist.metadata:
        pytest.skip("the installed uring is not this tree's (or predates the SPDX license)")
    assert dist.metadata["License-Expression"] == "MIT"
    assert set(project_key("classifiers")) <= set(dist.metadata.get_all("Classifier") or [])


def test_version_is_one_number() -> None:
    import uring

    assert project_key("version") == uring.__version__


def test_test_extra_brings_the_linters_and_ci_runs_them() -> None:
    extra = re.search(r"^test\s*=\s*(\[.*?\])", pyproject(), re.M | re.S)
    assert extra
    names = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0] for r in ast.literal_eval(extra.group(1))}
    assert {"pytest", "hypothesis", "ruff", "mypy"} <= names
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        steps = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert "set -euo pipefail" in steps
    assert steps[-3:] == [".venv/bin/ruff check uring tools", ".venv/bin/mypy uring tools",
                          ".venv/bin/python -m pytest -q"]


def test_help_names_the_program_uring() -> None:
    proc = run_uring("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: uring "), proc.stdout
    assert "__main__" not in proc.stdout and "-m uring [" not in proc.stdout


def test_console_script_help_names_the_program_uring() -> None:
    """The installed ``uring`` script next to this interpreter (a venv's bin)."""
    script = os.path.join(os.path.dirname(sys.executable), "uring")
    if not os.path.exists(script):
        script = shutil.which("uring") or ""
    if not script:
        pytest.skip("no uring console script installed")
    proc = run_uring("--help", command=[script])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: uring "), proc.stdout


def test_version_prints_the_version() -> None:
    proc = run_uring("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"uring {expected_version()}\n"


def test_version_falls_back_to_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import uring
    from uring import __main__ as cli

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli.version() == uring.__version__


def test_bench_help_names_the_program_uring() -> None:
    from uring.bench import cli

    assert cli.help_text().startswith("usage: uring bench ")


def test_readme_has_no_links_a_package_index_cannot_follow() -> None:
    """PyPI renders the README away from the repository: a relative link
    (``NOTES.md``, ``docs/...``) or image there is broken."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    targets = re.findall(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)", text)
    targets += re.findall(r"^\s*\[[^\]\n]+\]:\s*<?(\S+?)>?\s*$", text, re.M)  # reference links
    targets += re.findall(r"""(?:href|src)\s*=\s*["']([^"']+)""", text)  # raw HTML
    relative = [t for t in targets if not re.match(r"(https?|mailto):", t)]
    assert relative == []
