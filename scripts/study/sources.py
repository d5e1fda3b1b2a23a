"""The project code a job runs: its glue script and every module of the
project's packages (``rvscgd``, ``study``) it imports, directly or through
another, found by reading the sources (``ast``), never by running them.

The workflow lists these files as each rule's ``code`` input, so editing a
module reruns exactly the jobs that import it (Snakemake compares input
content), and ``study.provenance`` hashes the same files into a dataset's
``code_sha256``. A module counts as imported when Python would execute it:
``import a.b`` and ``from a.b import c`` run ``a/__init__.py`` and
``a/b.py`` (and ``a/b/c.py`` if ``c`` is a submodule); ``pkg.sub`` read as
an attribute after ``import pkg`` counts ``sub`` (``rvscgd`` loads its
``theory`` and ``digits`` submodules that way, on first use).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

# The folder holding the glue scripts and the packages (on sys.path in every job).
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rvscgd", "study")


@cache
def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source of project module ``name`` (dotted), relative to ``root``, or
    None if ``name`` is not a module of the project's packages."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for rel in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (root / rel).is_file():
            return rel
    return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def _direct_imports(rel: Path, package: str, root: Path) -> frozenset[str]:
    """The project modules the source ``root / rel`` imports itself (any
    depth of the syntax tree: imports inside functions count). ``package`` is
    the package relative imports start from ("" for a top-level script)."""
    tree = ast.parse((root / rel).read_text(), filename=str(rel))
    found: set[str] = set()
    bound: dict[str, str] = {}  # a local name bound to a project module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
                bound[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.update(_with_parents(module))
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if module_file(sub, root) is not None:
                    found.add(sub)
                    bound[alias.asname or alias.name] = sub
    for node in ast.walk(tree):  # pkg.sub after `import pkg`: the submodule loads on that access
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            found.add(f"{bound[node.value.id]}.{node.attr}")
    return frozenset(m for m in found if module_file(m, root) is not None)


def job_modules(*entries: str, root: Path = ROOT) -> list[str]:
    """Every project module a job runs, sorted: what ``entries`` import,
    transitively.

    Parameters
    ----------
    entries : str
        Glue scripts (file names relative to ``root``, e.g. ``"train.py"``)
        and dotted modules (e.g. ``"study.figures.convergence"``, a module a
        script imports by a name computed at run time).
    root : Path
        The folder of the glue scripts and packages (``scripts/``).
    """
    return list(_closure(entries, root))


@cache
def _closure(entries: tuple[str, ...], root: Path) -> tuple[str, ...]:
    todo: list[str] = []
    for entry in entries:
        if entry.endswith(".py"):
            todo.extend(_direct_imports(Path(entry), "", root))
        elif module_file(entry, root) is None:
            raise ValueError(f"entries: {entry!r} is neither a script nor a module of {PACKAGES}")
        else:
            todo.extend(_with_parents(entry))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        rel = module_file(name, root)
        package = name if rel.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_direct_imports(rel, package, root))
    return tuple(sorted(seen))


def job_sources(*entries: str, root: Path = ROOT) -> list[Path]:
    """The files a job runs, relative to ``root``: its scripts among
    ``entries``, then the source of every module of ``job_modules``."""
    scripts = [Path(e) for e in entries if e.endswith(".py")]
    return scripts + [module_file(m, root) for m in job_modules(*entries, root=root)]


def code_digest(files: Iterable) -> str:
    """sha256 over the given source files (each one's path relative to
    ``ROOT`` and its bytes, in path order): the same code gives the same
    digest in any checkout."""
    h = hashlib.sha256()
    rels = sorted(Path(f).resolve().relative_to(ROOT).as_posix() for f in files)
    for rel in rels:
        h.update(rel.encode())
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()
