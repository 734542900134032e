"""The README's scores table is the catalog's (`unweave models --markdown`), never typed by hand."""

from __future__ import annotations

from pathlib import Path

from unweave.cli.models import markdown_table
from unweave.pretrained.catalog import list_models

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_scores_table_matches_the_catalog():
    expected = markdown_table(list_models(include_tiny=False)).splitlines()
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(expected[0])  # the table's header row
    table = lines[start: start + len(expected) + 1]
    assert table[: len(expected)] == expected, "README scores table differs: paste `unweave models --markdown`"
    assert len(table) == len(expected) or not table[-1].startswith("|"), "README table has extra rows"
