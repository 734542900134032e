"""Released models (data) and how a name, path or URL resolves to a loaded model.

The catalog (``catalog.json`` beside this file) lists each model's architecture and arguments,
its weights file with sha256 (``null`` while untrained), training data, license and scores.
Architectures themselves live in the registry (code). ``tiny-<arch>`` names always exist: the
untrained tiny configuration of each architecture, seeded, for tests and offline examples.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..fileio import atomic_path
from ..inference.refine import refine_mode
from ..registry import build_model, build_tiny, get_arch, list_architectures
from .checkpoint import load_checkpoint, sha256_file

CATALOG_PATH = Path(__file__).with_name("catalog.json")
WEIGHTS_DIR = Path(__file__).with_name("weights")
TINY_PREFIX = "tiny-"
UNTRAINED_SEED = 0


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    with open(CATALOG_PATH, encoding="utf-8") as f:
        return json.load(f)


def catalog_entries() -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in _catalog()["models"]}


def default_model(task: str = "music") -> str:
    defaults = _catalog()["defaults"]
    if task not in defaults:
        raise ModelError(f"no default model for task {task!r} (tasks: {', '.join(defaults)})")
    return defaults[task]


def cache_dir() -> Path:
    root = os.environ.get("UNWEAVE_CACHE") or Path.home() / ".cache" / "unweave"
    return Path(root) / "weights"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# entries made of other entries: a bag averages its "models"; a cascade runs "then" on the
# mixture minus "first"'s estimate of "source". A bag holds single models. A cascade's "first"
# and "then" are each a single model or a bag: a catalog name, or a bag written in place
# ({"models": [...], "weights": [...]}, not listed as a model of its own).
COMPOSITES = ("bag", "cascade")


def _composite(entry: dict[str, Any]) -> str | None:
    return next((kind for kind in COMPOSITES if kind in entry), None)


def _member_specs(entry: dict[str, Any]) -> list[str | dict[str, Any]]:
    if "bag" in entry:
        return list(entry["bag"]["models"])
    return [entry["cascade"]["first"], entry["cascade"]["then"]]


def _member_name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else "(" + "+".join(spec["models"]) + ")"


def _member_entries(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog entries a bag or cascade entry is made of (for a bag written in place, an
    entry made up for it)."""
    entries = catalog_entries()
    kind = _composite(entry)
    nested = ("bag", "cascade") if kind == "bag" else ("cascade",)
    parts = ("first", "then") if kind == "cascade" else None
    members, bad = [], []
    for k, spec in enumerate(_member_specs(entry)):
        if parts and isinstance(spec, dict):
            members.append({"name": f"{entry['name']}.{parts[k]}", "task": entry["task"],
                            "bag": spec})
            continue
        target = entries.get(spec) if isinstance(spec, str) else None
        if target is None or any(key in target for key in nested):
            bad.append(_member_name(spec))
        else:
            members.append(target)
    if bad:
        what = "a single model" if kind == "bag" else "a single model or a bag"
        raise ModelError(f"{entry['name']}: {kind} member(s) {', '.join(bad)} not {what} "
                         "of the catalog")
    return members


def _compose(entry: dict[str, Any], members: list[nn.Module]) -> nn.Module:
    if "bag" in entry:
        from ..inference.bag import Bag

        return Bag(members, entry["bag"].get("weights"))
    from ..inference.cascade import Cascade

    first, then = members
    return Cascade(first, then, source=entry["cascade"].get("source", "vocals"))


def _assemble(entry: dict[str, Any], single: Callable[[dict[str, Any]], nn.Module],
              made: dict[str, nn.Module] | None = None) -> nn.Module:
    """The entry's model, its single models made by ``single``; a model a bag or cascade uses
    twice (tasnet for the vocals and for the rest) is made once and shared."""
    made = {} if made is None else made
    if not _composite(entry):
        if entry["name"] not in made:
            made[entry["name"]] = single(entry)
        return made[entry["name"]]
    members = [_assemble(e, single, made) for e in _member_entries(entry)]
    model = _compose(entry, members)
    model.trained = all(getattr(m, "trained", False) for m in members)
    return model.eval()


def _build(entry: dict[str, Any]) -> nn.Module:
    """The entry's model with untrained weights (a bag or cascade: of its members)."""
    return _assemble(entry, lambda e: build_model(e["arch"], **e.get("kwargs", {})))


def _weights(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's weights; a bag or cascade is trained when every member is, and its
    "sha256" names the members'."""
    if not _composite(entry):
        return entry.get("weights") or None
    members = [_weights(e) for e in _member_entries(entry)]
    return None if not all(members) else {
        "sha256": "+".join(w["sha256"][:12] for w in members)}


def _describe(entry: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    weights = _weights(entry)
    kind = _composite(entry)
    return {
        "name": entry["name"],
        "task": entry["task"],
        "arch": entry.get("arch", kind),
        "description": entry.get("description", ""),
        "sources": list(model.sources),
        "sample_rate": model.sample_rate,
        "audio_channels": model.audio_channels,
        "params": count_parameters(model),
        "trained": weights is not None,
        "refine": refine_mode(entry.get("refine", False)),
        "overlap": entry.get("overlap"),
        "sha256": weights["sha256"] if weights else None,
        "data": entry.get("data"),
        "license": entry.get("license"),
        "scores": entry.get("scores") or {},
        "training": entry.get("training") or {},
        **({"members": [_member_name(m) for m in _member_specs(entry)]} if kind else {}),
    }


def _tiny_entry(arch: str) -> dict[str, Any]:
    spec = get_arch(arch)
    return {"name": TINY_PREFIX + arch, "task": spec.task, "arch": arch, "kwargs": spec.tiny,
            "description": f"Untrained tiny {arch} for tests and examples.", "weights": None}


def list_models(include_tiny: bool = True) -> list[dict[str, Any]]:
    """Every model: name, task, arch, sources, sample rate, params, trained, sha256, data,
    license, scores, training, description, and default (the catalog's default for its task)."""
    rows = []
    defaults = _catalog()["defaults"]
    for entry in catalog_entries().values():
        with torch.device("meta"):  # shapes only: counts parameters without allocating them
            model = _build(entry)
        rows.append({**_describe(entry, model),
                     "default": defaults.get(entry["task"]) == entry["name"]})
    if include_tiny:
        for arch in list_architectures():
            entry = _tiny_entry(arch)
            rows.append({**_describe(entry, build_tiny(arch)), "default": False})
    return rows


def _fetch(url: str, sha256: str, name: str) -> Path:
    """Download ``url`` into the cache (atomic, sha256-checked); returns the local path."""
    target = cache_dir() / f"{name}-{sha256[:12]}.pt"
    if target.is_file() and sha256_file(target) == sha256:
        return target
    try:
        with atomic_path(target) as tmp:  # a mismatch or failure leaves no file behind
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
            got = sha256_file(tmp)
            if got != sha256:
                raise ModelError(f"{url}: sha256 mismatch (expected {sha256[:12]}…, "
                                 f"got {got[:12]}…)")
    except OSError as exc:
        raise ModelError(f"{url}: download failed ({exc})") from exc
    return target


def _load_single(entry: dict[str, Any]) -> nn.Module:
    weights = entry.get("weights")
    if not weights:
        torch.manual_seed(UNTRAINED_SEED)
        model = build_model(entry["arch"], **entry.get("kwargs", {}))
        model.trained = False
        return model.eval()
    local = WEIGHTS_DIR / weights["file"] if weights.get("file") else None
    if local is None or not local.is_file():
        if not weights.get("url"):
            raise ModelError(f"{entry['name']}: weights file {weights.get('file')} is missing")
        local = _fetch(weights["url"], weights["sha256"], entry["name"])
    model = load_checkpoint(local, sha256=weights["sha256"])
    model.trained = True
    return model


def load_model(name_or_path: str | os.PathLike) -> nn.Module:
    """Resolve a catalog name, ``tiny-<arch>``, a checkpoint path or an http(s)/file URL.

    URLs must carry the expected checksum as ``#sha256=HEX``.
    """
    name = str(name_or_path)
    if name == "default":
        name = default_model("music")
    entries = catalog_entries()
    if name in entries:
        model = _assemble(entries[name], _load_single)
        model.model_name = name
        model.refine = entries[name].get("refine", False)  # Separator's default: mode or bool
        model.default_overlap = entries[name].get("overlap")  # Separator's default when given
        return model
    if name.startswith(TINY_PREFIX) and name[len(TINY_PREFIX):] in list_architectures():
        torch.manual_seed(UNTRAINED_SEED)
        model = build_tiny(name[len(TINY_PREFIX):]).eval()
        model.trained, model.model_name = False, name
        return model
    parsed = urllib.parse.urlparse(name)
    if parsed.scheme in ("http", "https", "file"):
        sha = urllib.parse.parse_qs(parsed.fragment).get("sha256", [None])[0]
        if not sha:
            raise ModelError(f"{name}: a model URL needs '#sha256=<hex>' to be verified")
        model = load_checkpoint(_fetch(name.split("#")[0], sha, Path(parsed.path).stem), sha256=sha)
    elif Path(name).suffix in (".pt", ".th", ".ckpt") or Path(name).exists():
        model = load_checkpoint(name)
    else:
        known = ", ".join(sorted(entries) + [TINY_PREFIX + a for a in list_architectures()])
        raise ModelError(f"{name}: unknown model (known: {known}; or give a checkpoint path)")
    model.trained = True
    model.model_name = Path(parsed.path).stem if parsed.scheme else Path(name).stem
    return model
