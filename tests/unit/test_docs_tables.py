"""One source per fact: the generated parts of config/README.md and
docs/figures.md equal what ``study.docs_tables`` makes from their sources (the
config schema, the figure registry, the report captions); every registered
figure has a caption that opens with a bold title and a catalogue row; figure
modules point at their caption instead of restating it; no figure count is
written by hand; dated measurements live in docs/measurements.md alone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from study import docs_tables
from study.figures import catalog
from study.figures.registry import FIGURES

ROOT = Path(docs_tables.__file__).resolve().parents[2]
FIGURES_MD = ROOT / "docs" / "figures.md"
CONFIG_README = ROOT / "config" / "README.md"


@pytest.mark.parametrize("path", [CONFIG_README, FIGURES_MD], ids=lambda p: p.name)
def test_generated_parts_equal_their_sources(path):
    assert path.read_text() == docs_tables.expected(path), (
        f"{path.relative_to(ROOT)} differs from its sources: run `python -m study.docs_tables`"
    )


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "figures.md"
    text = FIGURES_MD.read_text()
    stale.write_text(text.replace("| 1a | `convergence` |", "| 1 | `convergence` |"))
    monkeypatch.setattr(catalog, "DOC", stale)
    monkeypatch.setattr(docs_tables, "ROOT", tmp_path)
    monkeypatch.setattr(docs_tables, "CONFIG_README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(CONFIG_README.read_text())
    assert docs_tables.main(["--check"]) == 1
    assert docs_tables.main([]) == 0 and stale.read_text() == text


def test_splice_refuses_missing_markers():
    with pytest.raises(ValueError, match="markers"):
        docs_tables.splice("no markers here", "config keys", "body")


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_has_a_titled_caption_and_a_catalogue_row(name):
    caption = catalog.caption_path(name)
    assert caption.is_file(), caption
    title = catalog.title(name)
    assert title.endswith((".", "?", ")")), title
    generated = docs_tables.part(FIGURES_MD.read_text(), catalog.PART)
    (row,) = [line for line in generated.splitlines() if line.startswith(f"| {catalog.number(name)} | `{name}` |")]
    assert title in row


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_module_docstring_points_at_its_caption(name):
    doc = ast.get_docstring(ast.parse((Path(catalog.__file__).parent / f"{name}.py").read_text()))
    assert doc is not None and "\n" not in doc, doc
    assert f"workflow/report/{name}.rst" in doc


def test_figure_numbers_are_unique_and_follow_the_categories():
    numbers = [catalog.number(name) for name in FIGURES]
    assert len(set(numbers)) == len(numbers)
    assert catalog.number("convergence") == "1a" and catalog.number("support_recovery") == "4"


NUMBER_WORDS = (
    "two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    "eighteen|nineteen|twenty"
)


def reference_docs():
    """What a user reads as reference: README.md, config/README.md, docs/*.md
    (not the dated record docs/measurements.md) and the report's captions."""
    docs = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "measurements.md"]
    return [ROOT / "README.md", CONFIG_README, *docs, *sorted((ROOT / "workflow" / "report").glob("*.rst"))]


@pytest.mark.parametrize("path", reference_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_hand_written_figure_count(path):
    """A count of the figures goes stale with the next figure: the catalogue
    is generated, prose does not count."""
    text = path.read_text()
    found = re.findall(rf"\b(\d+|{NUMBER_WORDS})\s+(?:figures|figure jobs|categories)\b", text, flags=re.IGNORECASE)
    assert not found, found


DATED = re.compile(
    r"\b20\d\d-\d\d-\d\d\b|load average|\bat [0-9a-f]{7}\b|default study measured|^## Requests",
    flags=re.IGNORECASE | re.MULTILINE,
)


@pytest.mark.parametrize("path", reference_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_dated_measurements_live_in_measurements_md(path):
    found = DATED.findall(path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: {found}: move it to docs/measurements.md"


def test_measurements_md_says_it_is_a_record():
    head = (ROOT / "docs" / "measurements.md").read_text()[:600].lower()
    assert "record" in head and "not reference" in head


def test_figures_md_prose_stays_short():
    """docs/figures.md's hand-written part (all but the generated ones, which
    grow with the figures) stays a short page: what a figure shows is its
    caption's to say."""
    text = FIGURES_MD.read_text()
    for name in (catalog.PART, catalog.USERS):
        text = text.replace(docs_tables.part(text, name), "")
    assert len(text.encode()) <= 7_000


def test_catalog_imports_without_plotting_libraries():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import study.figures.catalog; "
        "bad = {'matplotlib', 'seaborn', 'xarray'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts")], check=True)
