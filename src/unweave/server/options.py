"""Separation options sent with an upload: ``shifts``, ``stems``, ``format``.

They arrive as form fields, one per option, or together as a JSON object in ``options``
(explicit fields win). ``parse_options`` returns the validated, normalised dict stored with
the job, or raises ``ValueError`` with a message for the client (HTTP 422).
"""

from __future__ import annotations

import json
from typing import Any

MAX_SHIFTS = 10
KNOWN = ("shifts", "stems", "format")


def _merged(fields: dict[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    raw = fields.get("options", "").strip()
    if raw:
        try:
            merged = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"options: not valid JSON ({exc.msg})") from None
        if not isinstance(merged, dict):
            raise ValueError("options: expected a JSON object")
        unknown = sorted(set(merged) - set(KNOWN))
        if unknown:
            raise ValueError(f"options: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(KNOWN)})")  # fmt: skip
    for key in KNOWN:
        if fields.get(key, "").strip():
            merged[key] = fields[key].strip()
    return merged


def parse_options(
    fields: dict[str, str], sources: list[str] | tuple[str, ...], formats: list[str]
) -> dict[str, Any]:
    """Form fields -> ``{"shifts": int, "stems": [str] | None, "format": str}``."""
    raw = _merged(fields)
    shifts = raw.get("shifts", 0)
    try:
        shifts = int(shifts)
    except (TypeError, ValueError):
        raise ValueError(f"shifts: expected an integer, got {shifts!r}") from None
    if not 0 <= shifts <= MAX_SHIFTS:
        raise ValueError(f"shifts: must be within 0..{MAX_SHIFTS}")
    stems = raw.get("stems")
    if isinstance(stems, str):
        stems = [s.strip() for s in stems.split(",") if s.strip()]
    if stems is not None:
        if not isinstance(stems, list) or not all(isinstance(s, str) for s in stems):
            raise ValueError("stems: expected a list of stem names")
        unknown = [s for s in stems if s not in sources]
        if unknown:
            raise ValueError(f"stems: {', '.join(unknown)} not produced by this model "
                             f"(it produces {', '.join(sources)})")  # fmt: skip
        stems = [s for s in sources if s in stems] or None
    fmt = str(raw.get("format", "wav")).lower()
    if fmt not in formats:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(formats)}")
    return {"shifts": shifts, "stems": stems, "format": fmt}
