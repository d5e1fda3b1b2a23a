"""The generated parts of the documentation, each from its one source.

- ``config/README.md``, the key tables: from the descriptions and defaults of
  the config schema (``workflow/schemas/config.schema.yaml``);
- ``docs/figures.md``, the figure catalogue: from the figure registry, the
  report captions and the schema's ``figures`` block
  (``study.figures.catalog``).

Each generated part sits between the marker comments ``BEGIN``/``END`` of
:func:`markers`; the text around them is written by hand. Run
``python -m study.docs_tables`` to rewrite both files in place, or with
``--check`` to exit 1 (naming the files) if either differs from its sources;
``tests/unit/test_docs_tables.py`` holds the committed files equal to this.
Stdlib and PyYAML only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG_README = ROOT / "config" / "README.md"


def markers(name: str) -> tuple[str, str]:
    """The comments around a generated part called ``name``."""
    return (
        f"<!-- BEGIN GENERATED {name}: made by python -m study.docs_tables; edit its sources -->",
        f"<!-- END GENERATED {name} -->",
    )


def splice(text: str, name: str, body: str) -> str:
    """``text`` with its part ``name`` replaced by ``body``; a ValueError if the
    markers are missing or out of order."""
    begin, end = markers(name)
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"the markers of the generated part {name!r} are missing or out of order")
    return text[: i + len(begin)] + "\n" + body.rstrip("\n") + "\n" + text[j:]


def part(text: str, name: str) -> str:
    """The generated part ``name`` of ``text`` (without its markers)."""
    begin, end = markers(name)
    return text[text.index(begin) + len(begin) : text.index(end)].strip("\n") + "\n"


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def written(value) -> str:
    """A default as YAML flow text (``[64, 256]``, ``1e-12``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value)).replace("e+", "e")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(written(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {written(v)}" for k, v in value.items()) + "}"
    return str(value)


def cell(text: str) -> str:
    """Text fit for one cell of a Markdown table: one line, pipes and stars
    escaped (stars outside code spans, where they would start emphasis)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("*", "\\*") for i, p in enumerate(parts))


def default_cell(sub: dict) -> str:
    return f"`{written(sub['default'])}`" if "default" in sub else "required"


def keys(schema: dict, prefix: str = "", stop=("figures",)):
    """``(key, schema of the key)`` of every leaf key, in schema order; an object
    with properties is walked into unless its path is in ``stop``."""
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in sub and path not in stop:
            yield from keys(sub, f"{path}.", stop)
        else:
            yield path, sub


def key_rows(pairs) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{key}` | {default_cell(sub)} | {cell(sub.get('description', ''))} |" for key, sub in pairs]
    return rows


def config_keys(schema: dict) -> str:
    """config/README.md's key tables: the top-level scalar keys in one table
    (``figures`` one row: its keys are in docs/figures.md), then one table per
    block of the schema, the block's description above it."""
    props = schema["properties"]
    blocks = {k: s for k, s in props.items() if "properties" in s and k != "figures"}
    out = [*key_rows((k, s) for k, s in props.items() if k not in blocks), ""]
    for top, sub in blocks.items():
        out += [f"### `{top}`", ""]
        if sub.get("description"):
            out += [cell(sub["description"]), ""]
        out += [*key_rows(keys(sub, f"{top}.")), ""]
    return "\n".join(out)


def expected(path: Path, schema: dict | None = None) -> str:
    """The text ``path`` (config/README.md or docs/figures.md) should have."""
    schema = load_schema() if schema is None else schema
    text = Path(path).read_text()
    if Path(path).resolve() == CONFIG_README.resolve():
        return splice(text, "config keys", config_keys(schema))
    from study.figures import catalog

    return catalog.expected(text, schema)


def main(argv=None) -> int:
    from study.figures import catalog

    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for path in (CONFIG_README, catalog.DOC):
        new = expected(path)
        if new != path.read_text():
            stale.append(path)
            if not check:
                path.write_text(new)
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {'differs from its sources' if check else 'rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
