"""The figure catalogue of docs/figures.md, generated from the one source of
each fact: number, category and datasets from the registry, the title from
the report caption ``workflow/report/<name>.rst`` (its bold first sentence),
the keys (default, meaning) from the schema's ``figures`` block.

``python -m study.figures.catalog`` rewrites the catalogue in place (as does
``python -m study.docs_tables``, which also rewrites config/README.md).
Imports no matplotlib, seaborn or xarray.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .. import docs_tables as tables
from .registry import FIGURES, SHARED, modules

DOC = tables.ROOT / "docs" / "figures.md"
WORKFLOW = tables.ROOT / "workflow"
PART = "figure catalogue"
USERS = "shared module users"


def number(name: str) -> str:
    """The figure's number: its category's, with a letter when the category
    holds several figures (``1a``, ``1b``, ``4``), from the registry's order."""
    category = FIGURES[name].category
    mates = [n for n, f in FIGURES.items() if f.category == category]
    head = category.split(".", 1)[0]
    return head + ("abcdefghij"[mates.index(name)] if len(mates) > 1 else "")


def caption_path(name: str) -> Path:
    return WORKFLOW / FIGURES[name].caption(name)


def title(name: str) -> str:
    """The bold sentence that opens the figure's caption."""
    text = caption_path(name).read_text()
    found = re.match(r"\*\*([^*]+)\*\*", text)
    if not found:
        raise ValueError(f"{caption_path(name)} does not open with a bold title (**...**)")
    return " ".join(found.group(1).split())


def catalogue(schema: dict) -> str:
    figures = schema["properties"]["figures"]["properties"]
    rows = [
        "| # | figure | category: subcategory | caption's title | reads | keys |",
        "|---|---|---|---|---|---|",
    ]
    shared: dict[tuple, list[str]] = {}  # (key, default, meaning) -> figures
    for name, fig in FIGURES.items():
        block = figures[name]["properties"]
        names = ", ".join(f"`{k}`" for k in block if k != "enabled")
        category = fig.category.split(". ", 1)[-1]
        rows.append(
            f"| {number(name)} | `{name}` | {tables.cell(category)}: {tables.cell(fig.subcategory)} "
            f"| {tables.cell(title(name))} | {', '.join(fig.datasets)} | {names or '-'} |"
        )
        for key, sub in block.items():
            if key in ("enabled", "slice"):
                continue
            ident = (key, tables.default_cell(sub), tables.cell(sub.get("description", "")))
            shared.setdefault(ident, []).append(name)
    out = [*rows, "", "Every figure has `figures.<name>.enabled`; the other keys:", ""]
    out += ["| key | default | meaning | of |", "|---|---|---|---|"]
    out += [
        f"| `{key}` | {default} | {meaning} | {', '.join(names)} |"
        for (key, default, meaning), names in sorted(shared.items(), key=lambda item: item[0][0])
    ]
    out += ["", "Shared by every figure (block `figures`, keys `figures.<key>`):", ""]
    out += tables.key_rows((k, s) for k, s in tables.keys(figures_shared(schema), "figures.", stop=()))
    return "\n".join(out) + "\n"


def figures_shared(schema: dict) -> dict:
    """The ``figures`` block without the figures' own blocks, ``enabled`` and
    ``slice`` written once for all (every figure's are the same anchors)."""
    block = schema["properties"]["figures"]["properties"]
    props = {k: v for k, v in block.items() if k not in FIGURES}
    one = next(iter(FIGURES))
    props["<name>.enabled"] = block[one]["properties"]["enabled"]
    sliced = next(block[n]["properties"]["slice"] for n in FIGURES if "slice" in block[n]["properties"])
    props["<name>.slice"] = {k: v for k, v in sliced.items() if k != "properties"}
    return {"properties": props}


def users() -> str:
    """Which figures each shared module re-renders when edited (from the
    registry's ``uses`` and ``SHARED``)."""
    out = []
    for mod in sorted(SHARED):
        names = [n for n in FIGURES if mod in modules(n)]
        rest = [n for n in FIGURES if n not in names]
        if not rest:
            which = "every figure"
        elif len(rest) <= 3:
            which = "every figure but " + ", ".join(f"`{n}`" for n in rest)
        else:
            which = ", ".join(f"`{n}`" for n in names)
        out.append(f"- `{mod}.py`: {which}")
    return "\n".join(out) + "\n"


def expected(text: str, schema: dict) -> str:
    return tables.splice(tables.splice(text, PART, catalogue(schema)), USERS, users())


def main() -> int:
    new = expected(DOC.read_text(), tables.load_schema())
    if new != DOC.read_text():
        DOC.write_text(new)
        print(f"{DOC.relative_to(tables.ROOT)}: rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
