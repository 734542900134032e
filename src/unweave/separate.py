"""``python -m unweave.separate [-n MODEL] [--shifts N] FILES...``: the Demucs-style entry point,
with the same flags as ``unweave separate``."""

from __future__ import annotations

import sys

from .cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["separate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
