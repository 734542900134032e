"""Training curves from ``metrics.jsonl`` as PNG files (matplotlib, Agg backend).

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train", "step", "loss", "lr",
"samples_per_s"[, "d_loss", "adv_loss"]}``, ``{"kind": "valid", "step", "loss", "si_sdr",
"sdr", "si_sdr/<source>", "sdr/<source>"}``, and once ``{"kind": "baseline", ...}``: the same
scores for the mixture itself as the estimate. ``plot_metrics`` draws ``loss.png`` (training loss, raw
and smoothed, with the validation loss) and ``valid.png`` (SI-SDR and SDR per source).
"""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics.jsonl file (a torn last line is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _smooth(values: list[float], weight: float = 0.9) -> list[float]:
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


def plot_metrics(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw ``loss.png`` and ``valid.png`` next to ``path`` (or in ``out_dir``); returns them."""
    # Figure objects without pyplot: no global backend state, Agg canvas by default.
    from matplotlib.figure import Figure

    records = read_metrics(path)
    out_dir = Path(out_dir or Path(path).parent)
    written = []
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    baseline = next((r for r in records if r.get("kind") == "baseline"), {})
    if train:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        ax.plot(steps, losses, alpha=0.3, color="C0", label="train")
        ax.plot(steps, _smooth(losses), color="C0", label="train (smoothed)")
        if valid and all("loss" in r for r in valid):
            ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", color="C1",
                    label="valid")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        written.append(out_dir / "loss.png")
        fig.savefig(written[-1], dpi=100)
    if valid:
        keys = sorted({k for r in valid for k in r if "/" in k})
        fig = Figure(figsize=(10, 4))
        axes = fig.subplots(1, 2, sharex=True)
        for ax, metric in zip(axes, ("si_sdr", "sdr")):
            for i, key in enumerate(k for k in keys if k.startswith(metric + "/")):
                pts = [(r["step"], r[key]) for r in valid if key in r]
                ax.plot(*zip(*pts), "o-", color=f"C{i}", label=key.split("/", 1)[1])
            pts = [(r["step"], r[metric]) for r in valid if metric in r]
            if pts:
                ax.plot(*zip(*pts), "k--", label="mean")
            if metric in baseline:
                ax.axhline(baseline[metric], color="0.5", ls=":", label="mixture (mean)")
            ax.set_title(f"validation {metric.upper().replace('_', '-')} (dB)")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / "valid.png")
        fig.savefig(written[-1], dpi=100)
    return written
