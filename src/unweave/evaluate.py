"""Model x dataset -> per-item JSON, a summary table and plots (``unweave evaluate``).

Datasets (``DATASET``):

* a folder of tracks in MUSDB-like layout, ``TRACK/<stem>.<ext>`` with an optional
  ``TRACK/mixture.<ext>`` (any audio format :mod:`unweave.audio.io` reads); without a mixture
  file the mixture is the sum of the stems;
* a corpus root with split subfolders (``unweave data build``): ``ROOT/<split>/TRACK/...``;
  ``split`` picks one, by default ``test`` then ``valid``;
* a ``manifest.csv`` (the file, or a folder holding one): a ``track`` column, optional ``split``
  (``split`` picks the rows, by default ``test`` then ``valid``, else all) and ``mixture``
  columns, and one column per stem holding a file path; or a ``path`` column naming a track
  folder. Relative paths are relative to the CSV.

Every model source needs a reference stem, except that one missing source may be derived as the
mixture minus the other sources (``accompaniment = mixture - vocals`` on MUSDB). Stems the model
does not produce stay in the mixture. Scores are taken at each item's own sample rate, on the
model's channel count.

For each item and source, each metric is computed for the model's estimate, for the unprocessed
mixture (``improvement = estimate - mixture``) and for the oracle ideal ratio mask (IRM,
``|S_i| / sum_k |S_k|`` over the sources and the rest of the mixture, applied to the mixture
STFT): a ceiling for mask-based methods.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UnweaveError
from .fileio import write_text_atomic
from .metrics import report

AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".m4a", ".aac", ".opus",
     ".mp4", ".webm", ".mkv", ".mov", ".wv"}
)
MIXTURE_NAMES = ("mixture", "mix")
DEFAULT_SPLITS = ("test", "valid")
DEFAULT_METRICS = ("sdr", "si_sdr", "snr")
SILENT_POWER = 1e-8  # mean square below -80 dBFS: the source is absent from the item
CONDITIONS = ("estimate", "mixture", "oracle_irm")

#: metric name -> one-line definition (written to summary.json "report" and summary.md)
METRIC_DEFINITIONS = {
    "sdr": "museval v4 framewise median, 1 s frames (BSS Eval v4 image SDR "
    "10 log10(|s|^2 / |s - s_hat|^2) per frame, median over frames, silent frames skipped)",
    "si_sdr": "scale-invariant SDR (zero-mean), whole item, channels concatenated",
    "snr": "10 log10(|s|^2 / |s - s_hat|^2), whole item over channels and samples",
    "mdx_sdr": "MDX 2021 utterance SDR (eps 1e-7), whole item over channels and samples",
    "isr": "BSS Eval v4 image-to-spatial distortion ratio (512 taps), framewise median, 1 s",
    "sir": "BSS Eval v4 source-to-interference ratio (512 taps), framewise median, 1 s",
    "sar": "BSS Eval v4 source-to-artifacts ratio (512 taps), framewise median, 1 s",
    "pesq": "PESQ wideband MOS-LQO (P.862.2, 16 kHz), on the mono downmix",
    "stoi": "STOI (0-1), on the mono downmix",
}
METRICS = tuple(METRIC_DEFINITIONS)
BSS_METRICS = ("isr", "sir", "sar")


# ----------------------------------------------------------------------------------------------
# datasets
@dataclass
class Item:
    """One evaluation item: a name, its stem files and an optional mixture file."""

    name: str
    stems: dict[str, Path]
    mixture: Path | None = None
    where: str = ""  # folder or manifest row, for error messages
    split: str | None = None  # the manifest row's split, when it has one


def _audio_files(folder: Path) -> dict[str, Path]:
    files = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith("."):
            files.setdefault(f.stem, f)
    return files


def _folder_item(folder: Path) -> Item | None:
    files = _audio_files(folder)
    mixture = next((files.pop(n) for n in MIXTURE_NAMES if n in files), None)
    if not files:
        return None
    return Item(folder.name, files, mixture, where=str(folder))


def _track_folders(root: Path) -> list[Item]:
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        item = _folder_item(sub)
        if item is not None:
            items.append(item)
    return items


def _manifest_items(path: Path, split: str | None) -> list[Item]:
    base = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k}
                for row in csv.DictReader(f)]
    splits = sorted({row.get("split", "") for row in rows} - {""})
    if split is None:  # as for split folders: test, then valid; all rows if it has neither
        split = next((s for s in DEFAULT_SPLITS if s in splits), None)
    elif splits and split not in splits:
        raise UnweaveError(f"{path}: no rows with split {split!r} (splits in the manifest: "
                           f"{', '.join(splits)})")
    items = []
    grouped: dict[tuple[str, str], Item] = {}  # the corpus builders' one-row-per-stem layout
    for n, row in enumerate(rows, start=2):
        if split is not None and row.get("split", split) != split:
            continue
        where, row_split = f"{path}:{n}", row.get("split") or None
        if row.get("stem") and row.get("path") and row.get("item"):
            key = (row.get("split", ""), row["item"])
            if key not in grouped:
                grouped[key] = Item(row["item"], {}, where=where, split=row_split)
                items.append(grouped[key])
            if row["stem"] in MIXTURE_NAMES:
                grouped[key].mixture = base / row["path"]
            else:
                grouped[key].stems[row["stem"]] = base / row["path"]
            continue
        if row.get("path"):
            item = _folder_item(base / row["path"])
            if item is None:
                raise UnweaveError(f"{where}: no audio files in {base / row['path']}")
            item.name, item.split = row.get("track") or item.name, row_split
            items.append(item)
            continue
        name = row.pop("track", "") or row.pop("name", "") or f"item{n - 1:04d}"
        row.pop("split", None)
        mixture = row.pop("mixture", "")
        stems = {k: base / v for k, v in row.items() if v}
        if not stems:
            raise UnweaveError(f"{where}: row names no stem files")
        items.append(Item(name, stems, base / mixture if mixture else None, where=where,
                          split=row_split))
    return items


def _one(values: set):
    """The one value of ``values``, or None if there are none or several."""
    return next(iter(values)) if len(values) == 1 else None


def find_items(dataset: str | os.PathLike, split: str | None = None) -> tuple[list[Item], str]:
    """List the items of ``dataset``; returns (items, description of what was read)."""
    root = Path(dataset)
    if not root.exists():
        raise UnweaveError(f"{root}: dataset not found")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise UnweaveError(f"{root}: a dataset is a folder of tracks or a manifest .csv")
        items, source = _manifest_items(root, split), str(root)
    elif (root / "manifest.csv").is_file():
        items, source = _manifest_items(root / "manifest.csv", split), str(root / "manifest.csv")
    else:
        folder = root
        if split is not None:
            folder = root / split
            if not folder.is_dir():
                raise UnweaveError(f"{folder}: split folder not found")
        elif not _track_folders(root):
            folder = next((root / s for s in DEFAULT_SPLITS if (root / s).is_dir()), root)
        items, source = _track_folders(folder), str(folder)
        if folder != root:
            for item in items:
                item.split = folder.name
    if not items:
        raise UnweaveError(
            f"{root}: no tracks found (expected TRACK/<stem>.wav folders, a split folder "
            f"such as valid/ or test/, or a manifest.csv)"
        )
    return items, source


# ----------------------------------------------------------------------------------------------
# loading, oracle
@dataclass
class LoadedItem:
    mixture: torch.Tensor  # (C, T)
    references: torch.Tensor  # (S, C, T), in model source order
    sample_rate: int
    derived: list[str] = field(default_factory=list)


def load_item(item: Item, sources: Sequence[str], channels: int) -> LoadedItem:
    """Decode an item on ``channels`` channels at the rate of its mixture (or first stem)."""
    from .audio import convert, io

    missing = [s for s in sources if s not in item.stems]
    found = ", ".join(sorted(item.stems))
    if not any(s in item.stems for s in sources) or len(missing) > 1:
        raise UnweaveError(
            f"{item.where}: no stem for source(s) {', '.join(missing)} of the model "
            f"(stems found: {found}; model sources: {', '.join(sources)})"
        )
    first = item.mixture or next(iter(item.stems.values()))
    rate = io.info(first).sample_rate

    def read(path: Path) -> torch.Tensor:
        wav, _ = io.read(path, sample_rate=rate)
        if not bool(torch.isfinite(wav).all()):
            raise UnweaveError(f"{path}: holds NaN or infinite samples")
        try:
            return convert.convert_channels(wav, channels)
        except ValueError as exc:
            raise UnweaveError(f"{path}: {exc}") from None

    stems = {name: read(path) for name, path in item.stems.items()}
    mix = read(item.mixture) if item.mixture is not None else None
    lengths = [s.shape[-1] for s in stems.values()] + ([mix.shape[-1]] if mix is not None else [])
    length = min(lengths)
    stems = {k: v[..., :length] for k, v in stems.items()}
    mix = sum(stems.values()) if mix is None else mix[..., :length]
    derived = []
    if missing:  # one source: the mixture minus the model's other sources
        stems[missing[0]] = mix - sum(stems[s] for s in sources if s != missing[0])
        derived = missing
    refs = torch.stack([stems[s] for s in sources])  # (S, C, T)
    return LoadedItem(mix, refs, rate, derived)


def irm_fft_size(sample_rate: int) -> int:
    """STFT size for the oracle: the power of two nearest 64 ms (2048 at 44.1 kHz)."""
    return 2 ** max(6, round(math.log2(0.064 * sample_rate)))


def oracle_irm(mixture: torch.Tensor, references: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Ideal ratio (magnitude) mask estimates.

    Masks ``|S_i| / sum_k |S_k|`` use the references plus the remainder of the mixture
    (``mixture - sum(references)``) as components, and are applied to the mixture STFT.

    Shape:
        mixture: (C, T), references: (S, C, T) -> (S, C, T).
    """
    from .dsp.stft import istft, stft

    n_fft = irm_fft_size(sample_rate)
    hop = n_fft // 4
    mixture, references = mixture.float(), references.float()
    # one source at a time: a whole song at 44.1 kHz is ~20k frames x 1025 bins per channel
    spec = stft(mixture, n_fft, hop)  # (C, F, N)
    total = stft(mixture - references.sum(0), n_fft, hop).abs()  # rest of the mixture
    for ref in references:
        total += stft(ref, n_fft, hop).abs()
    total.clamp_min_(1e-12)
    out = [istft(stft(ref, n_fft, hop).abs() / total * spec, n_fft, hop, length=mixture.shape[-1])
           for ref in references]
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# scoring
def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate metric names (and that PESQ/STOI packages are installed)."""
    metrics = tuple(dict.fromkeys(m.strip().lower() for m in metrics if m.strip()))
    unknown = [m for m in metrics if m not in METRIC_DEFINITIONS]
    if unknown or not metrics:
        raise UnweaveError(
            f"--metrics {','.join(unknown) or '(none)'}: unknown metric "
            f"(known: {', '.join(METRICS)})"
        )
    from .metrics.perceptual import _require

    if "pesq" in metrics:
        _require("pesq", "pesq", "PESQ")
    if "stoi" in metrics:
        _require("pystoi", "pystoi", "STOI")
    return metrics


def score_set(
    references: np.ndarray, estimates: np.ndarray, sample_rate: int, metrics: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Score one set of estimates. (S, C, T), (S, C, T) -> ({metric: (S,)}, SDR frames (S, N))."""
    from . import metrics as M

    out: dict[str, np.ndarray] = {}
    frames = None
    n_src = references.shape[0]
    flat_ref, flat_est = references.reshape(n_src, -1), estimates.reshape(n_src, -1)
    if "sdr" in metrics:
        out["sdr"], frames = M.sdr_museval(references, estimates, sample_rate, return_frames=True)
    if "si_sdr" in metrics:
        out["si_sdr"] = M.si_sdr(flat_ref, flat_est)
    if "snr" in metrics:
        out["snr"] = M.snr(flat_ref, flat_est)
    if "mdx_sdr" in metrics:
        out["mdx_sdr"] = M.mdx_sdr(references, estimates, dim=(-2, -1))
    if any(m in metrics for m in BSS_METRICS):
        bss = M.bss_eval_v4_median(references, estimates, sample_rate)
        out.update({m: bss[m] for m in BSS_METRICS if m in metrics})
    if "pesq" in metrics:
        out["pesq"] = M.pesq_score(references.mean(1), estimates.mean(1), sample_rate)
    if "stoi" in metrics:
        out["stoi"] = M.stoi_score(references.mean(1), estimates.mean(1), sample_rate)
    return {m: out[m] for m in metrics}, frames


def silent_sources(references: Any) -> list[bool]:
    """For each source of ``references`` (S, C, T; NumPy or torch), whether it is absent from the
    item: its mean square is below ``SILENT_POWER``."""
    return [bool(power < SILENT_POWER) for power in (references ** 2).mean(axis=(-2, -1))]


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def score_item(
    loaded: LoadedItem, estimates: torch.Tensor, sources: Sequence[str], metrics: Sequence[str],
    *, oracle: bool = True,
) -> dict[str, Any]:
    """Per-source scores of one item for the estimate, the mixture and the IRM oracle.

    Shape:
        estimates: (S, C, T) in ``sources`` order.
    """
    refs = loaded.references.double().numpy()
    rate = loaded.sample_rate
    sets = {
        "estimate": estimates.double().numpy(),
        "mixture": np.broadcast_to(loaded.mixture.double().numpy(), refs.shape),
    }
    if oracle:
        sets["oracle_irm"] = oracle_irm(loaded.mixture, loaded.references, rate).double().numpy()
    results, frames = {}, None
    for condition, est in sets.items():
        results[condition], f = score_set(refs, est, rate, metrics)
        if condition == "estimate":
            frames = f
    # A source absent from the item (e.g. a song without bass) has no meaningful score: SDR and
    # SI-SDR of a silent reference measure only the estimate's level. It is left out of the
    # statistics (None), as MUSDB-style evaluations do, and listed in ``silent_references``.
    silent = silent_sources(refs)
    scores: dict[str, Any] = {}
    for i, source in enumerate(sources):
        per_metric = {}
        for m in metrics:
            row = {c: None if silent[i] else _num(results[c][m][i]) for c in sets}
            est, mix = row["estimate"], row["mixture"]
            row["improvement"] = None if est is None or mix is None else est - mix
            per_metric[m] = row
        scores[source] = per_metric
    out = {"scores": scores}
    if any(silent):
        out["silent_references"] = [s for i, s in enumerate(sources) if silent[i]]
    if frames is not None:
        out["sdr_frames"] = {s: [_num(v) for v in frames[i]] for i, s in enumerate(sources)}
    return out


# ----------------------------------------------------------------------------------------------
# writing
def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_. ()[]&,+" else "_" for c in name).strip(". ")
    return keep or "item"


# ----------------------------------------------------------------------------------------------
# the driver
def _model_info(separator) -> dict[str, Any]:
    model = separator.model
    return {
        "name": getattr(separator, "model_name", None) or getattr(model, "model_name", None)
        or type(model).__name__,
        "arch": getattr(model, "arch_name", None),
        "sources": list(separator.sources),
        "sample_rate": int(separator.sample_rate),
        "audio_channels": int(model.audio_channels),
        "trained": getattr(model, "trained", None),
    }


def evaluate(
    model: Any,
    dataset: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    split: str | None = None,
    oracle: bool = True,
    plots: bool = True,
    spectrogram_items: int = 3,
    max_items: int | None = None,
    shifts: int = 0,
    overlap: float | None = None,
    refine: bool | str | None = None,
    band_extension: bool = True,
    segment: float | None = None,
    device: str = "cpu",
    jobs: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``dataset``; write reports to ``out_dir`` (if given); return the summary.

    Args:
        model: catalog name, checkpoint path, ``nn.Module``, or an ``unweave.Separator``.
        dataset: folder, corpus root or manifest (see the module docstring).
        out_dir: where ``items/<track>.json``, ``summary.json``, ``summary.md``, ``plots/`` go.
        metrics: names from :data:`METRICS`.
        split: split subfolder / manifest ``split`` value (default: ``test``, then ``valid``).
        oracle: also score the ideal-ratio-mask oracle.
        plots: write score distributions and spectrograms (needs matplotlib).
        spectrogram_items: how many items get a spectrogram figure.
        max_items: score only the first N items.
        shifts, overlap, refine, band_extension, segment, device, jobs: passed to
            :class:`unweave.Separator`.
        progress: show a tqdm bar over items.
        log: where to print notes (default: stderr).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    metrics = check_metrics(metrics)
    items, source = find_items(dataset, split)
    if max_items is not None:
        items = items[: max(1, int(max_items))]
    separator = _separator(model, shifts=shifts, overlap=overlap, segment=segment, device=device,
                           jobs=jobs, refine=refine, band_extension=band_extension)
    sources = tuple(separator.sources)
    channels = int(separator.model.audio_channels)
    out = Path(out_dir) if out_dir is not None else None
    conditions = CONDITIONS if oracle else CONDITIONS[:2]
    from tqdm.auto import tqdm

    started = time.perf_counter()
    records, figures = [], []
    for item in tqdm(items, desc="evaluate", unit="item", disable=not progress, file=sys.stderr):
        loaded = load_item(item, sources, channels)
        t0 = time.perf_counter()
        with torch.inference_mode():
            stems = separator.separate_tensor(loaded.mixture, loaded.sample_rate)
        seconds = time.perf_counter() - t0
        est = torch.stack([stems[s] for s in sources]).float()  # (S, C, T)
        record = {
            "track": item.name,
            "path": item.where,
            "sample_rate": loaded.sample_rate,
            "duration_seconds": loaded.mixture.shape[-1] / loaded.sample_rate,
            "derived_sources": loaded.derived,
            "separation_seconds": seconds,
            **score_item(loaded, est, sources, metrics, oracle=oracle),
        }
        records.append(record)
        if out is not None:
            write_text_atomic(out / "items" / f"{safe_name(item.name)}.json", _json(record))
        if plots and len(figures) < spectrogram_items:
            figures.append((item.name, loaded, est))

    summary = {
        "model": _model_info(separator),
        "dataset": source,
        "split": split if split is not None else _one({item.split for item in items}),
        "items": len(records),
        "metrics": list(metrics),
        "conditions": list(conditions),
        "report": {m: METRIC_DEFINITIONS[m] for m in metrics},
        "sdr_definition": METRIC_DEFINITIONS["sdr"] if "sdr" in metrics else None,
        "settings": {
            "shifts": shifts, "overlap": getattr(separator, "overlap", overlap),
            "segment": segment, "device": device,
            "refine": getattr(separator, "refine_mode", None) or False,
            "band_extension": bool(getattr(separator, "band_extension", False)),
            "oracle": "ideal ratio mask |S_i| / sum_k |S_k| (sources + rest of the mixture) "
            "on the mixture STFT, Hann window of 64 ms (power of two), hop 1/4",
        },
        **report.summarize(records, sources, metrics, conditions),
        "seconds": time.perf_counter() - started,
    }
    if out is not None:
        write_text_atomic(out / "summary.json", _json(summary))
        write_text_atomic(out / "summary.md", report.summary_markdown(summary))
        if plots:
            if report.plotting_available():
                report.plot_distributions(records, summary, out / "plots")
                for name, loaded, est in figures:
                    report.plot_spectrograms(
                        name, loaded.mixture, est, loaded.references, sources, loaded.sample_rate,
                        out / "plots" / "spectrograms" / f"{safe_name(name)}.png",
                    )
            else:
                log("note: matplotlib is not installed; no plots (pip install 'unweave[quality]')")
    return summary


def _separator(model: Any, **kwargs: Any):
    """An object with ``model``, ``sources``, ``sample_rate`` and ``separate_tensor``."""
    if hasattr(model, "separate_tensor"):
        return model
    from .inference.separator import Separator

    return Separator(model, **kwargs)
