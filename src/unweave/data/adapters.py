"""Adapters: existing corpora on disk -> a uniform list of items.

Every adapter returns ``[{"name": str, "stems": {stem: Path}, "mixture": Path | None}]``
(folder adapters sorted by name, CSV in row order), so datasets and evaluation code never
look at a corpus's own layout:

* :func:`musdb_items`      MUSDB18-HQ (or MUSDB18 decoded to WAV): ``track/{mixture,drums,...}``
* :func:`dnr_items`        Divide and Remaster: ``{tr,cv,tt}/<id>/{mix,speech,music,sfx}.wav``
* :func:`corpus_items`     corpora written by ``unweave data build`` (``split/item/stem.wav``)
* :func:`speech_noise_items` a folder of clean speech + a folder of noise
* :func:`csv_items`        a CSV with one row per item, columns = stem names (+ mixture, name)
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UnweaveError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")
DNR_SPLITS = {"train": "tr", "valid": "cv", "test": "tt"}
DNR_STEMS = {"speech": ("speech", "dialog"), "music": ("music",), "sfx": ("sfx", "effects")}
MIXTURE_NAMES = ("mixture", "mix")


def _item(name: str, stems: dict[str, Path], mixture: Path | None) -> dict:
    return {"name": name, "stems": stems, "mixture": mixture}


def _audio_files(folder: Path) -> dict[str, Path]:
    """{stem name: path} of the audio files directly in ``folder`` (first suffix wins)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES
                and not path.name.startswith(".")):
            files.setdefault(path.stem, path)
    return files


def _require_dir(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UnweaveError(f"{root}: folder not found")
    return root


def _split_root(root: Path, split: str | None, names: dict[str, str] | None = None) -> Path:
    if split is None:
        return root
    folder = root / (names.get(split, split) if names else split)
    if not folder.is_dir():
        raise UnweaveError(f"{root}: no '{folder.name}' split folder")
    return folder


def _folder_items(root: Path, wanted: dict[str, tuple[str, ...]], what: str) -> list[dict]:
    """Items from subfolders holding one file per stem (aliases allowed)."""
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = _audio_files(folder)
        stems = {}
        for stem, aliases in wanted.items():
            found = next((files[a] for a in aliases if a in files), None)
            if found is not None:
                stems[stem] = found
        if not stems:
            continue
        if len(stems) != len(wanted):
            missing = sorted(set(wanted) - set(stems))
            raise UnweaveError(f"{folder}: {what} item lacks stems {', '.join(missing)}")
        mixture = next((files[m] for m in MIXTURE_NAMES if m in files), None)
        items.append(_item(folder.name, stems, mixture))
    if not items:
        raise UnweaveError(f"{root}: no {what} items found")
    return items


def musdb_items(root: str | Path, split: str | None = None,
                stems: tuple[str, ...] = MUSDB_STEMS) -> list[dict]:
    """MUSDB18-HQ: ``root[/split]/<track>/{mixture,drums,bass,other,vocals}.wav``.

    ``split`` is ``"train"`` or ``"test"`` (a subfolder), or None when ``root`` holds tracks.
    """
    base = _split_root(_require_dir(root), split)
    return _folder_items(base, {s: (s,) for s in stems}, "MUSDB")


def dnr_items(root: str | Path, split: str | None = None) -> list[dict]:
    """Divide and Remaster (v2/v3): ``root/{tr,cv,tt}/<id>/{mix,speech,music,sfx}.wav``.

    ``split``: ``train``/``valid``/``test`` (or the DnR names ``tr``/``cv``/``tt``); None when
    ``root`` holds the item folders. Stems are named speech, music, sfx (``dialog`` and
    ``effects`` are accepted as the DnR v3 names).
    """
    base = _split_root(_require_dir(root), split, DNR_SPLITS)
    return _folder_items(base, DNR_STEMS, "DnR")


def corpus_items(root: str | Path, split: str = "train") -> list[dict]:
    """A corpus written by ``unweave data build`` (stems from its dataset.json)."""
    import json

    root = _require_dir(root)
    info_path = root / "dataset.json"
    if not info_path.is_file():
        raise UnweaveError(f"{root}: no dataset.json (not an unweave corpus)")
    info = json.loads(info_path.read_text())
    base = _split_root(root, split)
    if info.get("task") == "denoise":
        return speech_noise_items(base / "speech", base / "noise")
    return _folder_items(base, {s: (s,) for s in info["sources"]}, info.get("task", "corpus"))


def speech_noise_items(speech_dir: str | Path, noise_dir: str | Path) -> list[dict]:
    """Folders of clean speech and of noise (searched recursively) -> one-stem items.

    Speech items have the stem ``speech``, noise items ``noise``; names are prefixed with the
    pool (``speech/<relative path>``) so that they stay unique.
    """
    items = []
    for stem, folder in (("speech", _require_dir(speech_dir)), ("noise", _require_dir(noise_dir))):
        files = sorted(p for p in folder.rglob("*")
                       if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise UnweaveError(f"{folder}: no audio files for the {stem} pool")
        items += [_item(f"{stem}/{p.relative_to(folder).with_suffix('')}", {stem: p}, None)
                  for p in files]
    return items


def _resolve(csv_path: Path, line: int, value: str, column: str) -> Path:
    """A CSV cell -> existing file (relative paths are relative to the CSV's folder)."""
    file = Path(value).expanduser()
    file = file if file.is_absolute() else csv_path.parent / file
    if not file.is_file():
        raise UnweaveError(f"{csv_path}: line {line}, column {column}: {file} not found")
    return file


def csv_items(csv_path: str | Path) -> list[dict]:
    """CSV with a header row: one column per stem (paths, relative to the CSV's folder),
    plus optional ``mixture`` (or ``mix``) and ``name`` columns."""
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise UnweaveError(f"{path}: file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        stem_columns = [c for c in columns if c not in ("name", *MIXTURE_NAMES)]
        if not stem_columns:
            raise UnweaveError(f"{path}: no stem columns in the header")
        items = []
        for index, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            stems = {c: _resolve(path, index, row[c], c) for c in stem_columns if row.get(c)}
            if not stems:
                continue
            mix_column = next((m for m in MIXTURE_NAMES if row.get(m)), None)
            mixture = _resolve(path, index, row[mix_column], mix_column) if mix_column else None
            name = row.get("name") or f"row{index - 1:05d}"
            items.append(_item(name, stems, mixture))
    if not items:
        raise UnweaveError(f"{path}: no items")
    return items
