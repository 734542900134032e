"""A corpus builder for the parallel-build tests: shard 1 fails at once, shard 0 would write a
marker file after a while (it must be stopped before)."""

from __future__ import annotations

import time
from pathlib import Path

from unweave.errors import UnweaveError

PACKAGES: tuple[str, ...] = ()


def build(out, *, cache=None, limit_minutes=None, progress=False, shard=None) -> dict:
    if shard is not None and shard[0] == 1:
        raise UnweaveError(f"{out}: shard 1 cannot read its source")
    time.sleep(20.0)
    Path(out, "shard0-finished").write_text("the failing shard did not stop this one")
    return {"counts": {}, "skipped_sources": []}
