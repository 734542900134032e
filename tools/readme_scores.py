"""Rewrite the scores table in README.md from the catalog (`unweave models --markdown`).

Usage: python tools/readme_scores.py       (tests/test_readme.py checks the two agree)
"""

from __future__ import annotations

from pathlib import Path

from unweave.cli.models import markdown_table
from unweave.fileio import write_text_atomic
from unweave.pretrained.catalog import list_models

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    table = markdown_table(list_models(include_tiny=False)).splitlines()
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(table[0])
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[start:end] = table
    write_text_atomic(README, "\n".join(lines) + "\n")
    print(f"README.md: {len(table) - 2} score rows")


if __name__ == "__main__":
    main()
