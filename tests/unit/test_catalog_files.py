"""What the Snakemake workflow catalog and citation tools read is present and
well-formed: LICENSE, CITATION.cff, .snakemake-workflow-catalog.yml,
config/README.md, min_version in the Snakefile, profiles named profile.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_citation_cites_the_workflow_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    for key in ("message", "title", "authors", "version", "license"):
        assert cff.get(key), key
    assert cff["license"] == "MIT"
    (paper,) = cff["references"]
    assert paper["doi"] == "10.3389/fams.2020.00013"
    assert {"Dinh", "Xin"} == {a["family-names"] for a in paper["authors"]}
    assert "arXiv:1901.09731" in {i["value"] for i in paper["identifiers"]}


def test_catalog_usage_file():
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    assert set(usage["software-stack-deployment"]) == {"conda", "apptainer", "apptainer+conda"}
    assert usage["report"] is True
    assert (ROOT / "config" / "README.md").is_file() and (ROOT / "workflow" / "Snakefile").is_file()


def test_snakefile_requires_a_minimum_snakemake():
    import snakemake

    text = (ROOT / "workflow" / "Snakefile").read_text()
    m = re.search(r'^min_version\("(\d+)\.(\d+)"\)', text, re.M)
    assert m, "no min_version(...) in workflow/Snakefile"
    installed = tuple(int(x) for x in snakemake.__version__.split(".")[:2])
    assert (int(m.group(1)), int(m.group(2))) <= installed


def test_profiles_use_the_current_file_name():
    profiles = [p for p in (ROOT / "workflow" / "profiles").iterdir() if p.is_dir()]
    assert {p.name for p in profiles} >= {"default", "slurm"}
    for p in profiles:
        assert (p / "profile.yaml").is_file() and not (p / "config.yaml").exists(), p
        assert isinstance(yaml.safe_load((p / "profile.yaml").read_text()), dict), p
