"""Reporting evaluation scores: summary statistics, a Markdown table and plots.

Input is the list of per-item records written by :func:`unweave.evaluate.evaluate`:
``record["scores"][source][metric][condition] -> float | None`` with conditions ``estimate``,
``mixture``, ``oracle_irm`` (optional) and ``improvement``.

Plots use matplotlib's object API with the Agg canvas (no global backend switch, no display):
score distributions per source (box plot with the items as jittered points), and mixture /
estimate / reference spectrograms for a few items.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_path

CONDITION_LABELS = {"mixture": "mixture", "estimate": "estimate", "oracle_irm": "IRM oracle"}


def stats(values: list[float | None]) -> dict[str, Any]:
    """Median, mean and count of ``values`` (None left out; median and mean None if empty)."""
    vals = np.array([v for v in values if v is not None], dtype=np.float64)
    if vals.size == 0:
        return {"median": None, "mean": None, "n": 0}
    return {"median": float(np.median(vals)), "mean": float(np.mean(vals)), "n": int(vals.size)}


def summarize(items: list[dict[str, Any]], sources: Sequence[str], metrics: Sequence[str],
              conditions: Sequence[str]) -> dict[str, Any]:
    """Per source and metric: median/mean over items for each condition, improvement, ratio."""
    stems: dict[str, Any] = {}
    for source in sources:
        stems[source] = {}
        for m in metrics:
            rows = [it["scores"][source][m] for it in items]
            entry = {c: stats([r[c] for r in rows]) for c in (*conditions, "improvement")}
            est, orc = entry["estimate"]["median"], entry.get("oracle_irm", {}).get("median")
            entry["ratio_to_oracle"] = est / orc if est is not None and orc and orc > 0 else None
            stems[source][m] = entry
    overall: dict[str, Any] = {}
    for m in metrics:  # mean over sources of the per-source medians (MUSDB-style)
        overall[m] = {}
        for c in (*conditions, "improvement"):
            meds = [stems[s][m][c]["median"] for s in sources]
            ok = [v for v in meds if v is not None]
            overall[m][c] = float(np.mean(ok)) if ok else None
    return {"stems": stems, "overall": overall}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: one table per metric, a row per source, then the definitions."""
    model, conds = summary["model"], summary["conditions"]
    lines = [
        f"# Evaluation of {model['name']} on {summary['dataset']}",
        "",
        f"{summary['items']} items; sources: {', '.join(model['sources'])}; "
        + "median (mean) over items.",
        "",
    ]
    head = ["source", "estimate", "mixture", "improvement"]
    if "oracle_irm" in conds:
        head += ["IRM oracle", "est/oracle"]
    for m in summary["metrics"]:
        lines += [f"## {m}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        rows = list(summary["stems"].items())
        for source, per in rows:
            e = per[m]
            n = e["estimate"]["n"]
            label = source if n == summary["items"] else f"{source} ({n} of {summary['items']})"
            cells = [label] + [
                f"{_fmt(e[c]['median'])} ({_fmt(e[c]['mean'])})"
                for c in ("estimate", "mixture", "improvement")
            ]
            if "oracle_irm" in conds:
                cells += [f"{_fmt(e['oracle_irm']['median'])} ({_fmt(e['oracle_irm']['mean'])})",
                          _fmt(e["ratio_to_oracle"])]
            lines.append("| " + " | ".join(cells) + " |")
        o = summary["overall"][m]
        cells = ["**mean of medians**"]
        cells += [_fmt(o[c]) for c in ("estimate", "mixture", "improvement")]
        if "oracle_irm" in conds:
            cells += [_fmt(o["oracle_irm"]), "-"]
        lines += ["| " + " | ".join(cells) + " |", ""]
    lines += ["## Definitions", ""]
    lines += [f"- **{m}**: {summary['report'][m]}" for m in summary["metrics"]]
    lines += [
        "- **improvement**: estimate minus mixture (the unprocessed mixture scored as estimate).",
        ("- **(k of n)**: the source is absent (silent reference, below -80 dBFS) from the other "
        "items, which are left out of its statistics."),
        f"- **IRM oracle**: {summary['settings']['oracle']}",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# plots
def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    """Save through a temp file and a rename, so a figure appears whole or not at all."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_distributions(
    records: list[dict[str, Any]], summary: dict[str, Any], folder: Path
) -> list[Path]:
    """One PNG per metric: for each source, a box per condition with the items as points."""
    sources = list(summary["model"]["sources"])
    conditions = [c for c in ("mixture", "estimate", "oracle_irm") if c in summary["conditions"]]
    rng = np.random.default_rng(0)
    colors = {"mixture": "#9e9e9e", "estimate": "#1f77b4", "oracle_irm": "#2ca02c"}
    width = 0.8 / len(conditions)
    paths = []
    for metric in summary["metrics"]:
        fig = _figure(1.6 + 1.3 * len(sources), 3.6)
        ax = fig.add_subplot()
        for k, cond in enumerate(conditions):
            pos = np.arange(len(sources)) + (k - (len(conditions) - 1) / 2) * width
            data = []
            for i, source in enumerate(sources):
                vals = [r["scores"][source][metric][cond] for r in records]
                vals = np.array([v for v in vals if v is not None], dtype=float)
                data.append(vals)
                jitter = rng.uniform(-width / 4, width / 4, size=vals.size)
                ax.plot(pos[i] + jitter, vals, ".", color=colors[cond], alpha=0.6, ms=4)
            keep = [i for i, d in enumerate(data) if d.size]
            if keep:
                ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=width * 0.8,
                           showfliers=False, medianprops={"color": colors[cond]})
            ax.plot([], [], "s", color=colors[cond], label=CONDITION_LABELS[cond])
        ax.set_xticks(np.arange(len(sources)), sources)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per item ({summary['items']} items)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        path = folder / f"{metric}.png"
        _save(fig, path)
        paths.append(path)
    return paths


def _log_spectrogram(wav: torch.Tensor, n_fft: int) -> np.ndarray:
    """(C, T) -> (F, N) dB magnitude of the channel mean."""
    from ..dsp.stft import stft

    mag = stft(wav.float().mean(0), n_fft, n_fft // 4).abs()
    return (20 * torch.log10(mag + 1e-8)).numpy()


def plot_spectrograms(name: str, mixture: torch.Tensor, estimates: torch.Tensor,
                      references: torch.Tensor, sources: Sequence[str], sample_rate: int,
                      path: Path, *, max_seconds: float = 15.0) -> Path:
    """Rows: sources; columns: mixture, estimate, reference (dB, shared colour scale).

    Items longer than ``max_seconds`` are shown from their middle ``max_seconds``.

    Shape:
        mixture: (C, T), estimates / references: (S, C, T).
    """
    length = mixture.shape[-1]
    keep = min(length, int(max_seconds * sample_rate))
    start = (length - keep) // 2
    mixture = mixture[..., start : start + keep]
    estimates = estimates[..., start : start + keep]
    references = references[..., start : start + keep]
    n_fft = 2 ** max(6, round(np.log2(0.046 * sample_rate)))
    mix_db = _log_spectrogram(mixture, n_fft)
    top = float(mix_db.max())
    extent = [start / sample_rate, (start + keep) / sample_rate, 0, sample_rate / 2000]
    fig = _figure(10, 1.2 + 2.0 * len(sources))
    axes = fig.subplots(len(sources), 3, squeeze=False, sharex=True, sharey=True)
    image = None
    for i, source in enumerate(sources):
        panels = (("mixture", mix_db), ("estimate", _log_spectrogram(estimates[i], n_fft)),
                  ("reference", _log_spectrogram(references[i], n_fft)))
        for j, (label, db) in enumerate(panels):
            ax = axes[i, j]
            image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma",
                              vmin=top - 80, vmax=top, interpolation="nearest")
            ax.set_title(f"{source}: {label}" if label != "mixture" else "mixture", fontsize=9)
            if j == 0:
                ax.set_ylabel("kHz")
            if i == len(sources) - 1:
                ax.set_xlabel("s")
    fig.colorbar(image, ax=axes, label="dB", shrink=0.8)
    fig.suptitle(name)
    _save(fig, path)
    return path
