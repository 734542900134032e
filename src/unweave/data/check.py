"""``unweave data check``: find broken items in a corpus.

Checks every item folder (``split/item/*.wav``) or pool file (denoise corpora) for: missing
stems, sample-rate / channel / length mismatches, clipping, silence, and stems that do not
sum to ``mixture.wav``. Silent stems are warnings (a song may have no bass); a silent
mixture or pool file is a problem.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import UnweaveError

SILENCE_PEAK = 1e-4  # -80 dBFS
CLIP_LEVEL = 0.9999
CLIP_FRACTION = 1e-4  # more than this fraction of samples at full scale -> clipping
DEFAULT_TOLERANCE = 2e-4
MIXTURE_NAMES = ("mixture", "mix")


def _issue(kind: str, path: Path, root: Path, detail: str) -> dict:
    return {"kind": kind, "path": str(path.relative_to(root)), "detail": detail}


def _signal_issues(audio: np.ndarray, path: Path, root: Path, *, silent_is_problem: bool
                   ) -> tuple[list[dict], list[dict]]:
    problems, warnings = [], []
    peak = float(np.abs(audio).max(initial=0.0))
    if peak < SILENCE_PEAK:
        (problems if silent_is_problem else warnings).append(
            _issue("silent", path, root, f"peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS"))
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if audio.size else 0.0
    if clipped > CLIP_FRACTION:
        problems.append(_issue("clipping", path, root, f"{100 * clipped:.3f} % of samples at "
                               "full scale"))
    return problems, warnings


def _read(path: Path) -> tuple[np.ndarray | None, int, str | None]:
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile errors vary; reported, not raised
        return None, 0, f"cannot read ({exc})"
    return audio, rate, None


def check_item(folder: Path, root: Path, expected: dict, tolerance: float
               ) -> tuple[list[dict], list[dict]]:
    """Problems and warnings of one item folder."""
    problems, warnings = [], []
    files = {p.stem: p for p in sorted(folder.glob("*.wav")) if not p.name.startswith(".")}
    wanted = expected.get("sources") or []
    for stem in wanted:
        if stem not in files:
            problems.append(_issue("missing", folder / f"{stem}.wav", root, "stem file missing"))
    audio: dict[str, np.ndarray] = {}
    rates, shapes = {}, {}
    for stem, path in files.items():
        data, rate, error = _read(path)
        if error:
            problems.append(_issue("unreadable", path, root, error))
            continue
        audio[stem], rates[stem], shapes[stem] = data, rate, data.shape
        p, w = _signal_issues(data, path, root, silent_is_problem=stem in MIXTURE_NAMES)
        problems += p
        warnings += w
    if not audio:
        return problems, warnings
    want_rate, want_channels = expected.get("sample_rate"), expected.get("channels")
    if len(set(rates.values())) > 1 or (want_rate and set(rates.values()) != {want_rate}):
        detail = ", ".join(f"{s}={r}" for s, r in rates.items())
        problems.append(_issue("rate", folder, root, detail + (
            f" (expected {want_rate})" if want_rate else "")))
    channels = {s: shape[1] for s, shape in shapes.items()}
    counts = set(channels.values())
    if len(counts) > 1 or (want_channels and counts != {want_channels}):
        problems.append(_issue("channels", folder, root, ", ".join(
            f"{s}={c}" for s, c in channels.items())))
    lengths = {s: shape[0] for s, shape in shapes.items()}
    if len(set(lengths.values())) > 1:
        problems.append(_issue("length", folder, root, ", ".join(
            f"{s}={n}" for s, n in lengths.items())))
        return problems, warnings
    mixture = next((m for m in MIXTURE_NAMES if m in audio), None)
    stems = [s for s in audio if s not in MIXTURE_NAMES]
    if mixture and stems and len(set(channels.values())) == 1:
        residual = audio[mixture] - sum(audio[s] for s in stems)
        error = float(np.abs(residual).max(initial=0.0))
        if error > tolerance:
            problems.append(_issue("sum", folder, root, f"max |sum(stems) - mixture| = "
                                   f"{error:.2e} > {tolerance:.0e}"))
    return problems, warnings


def check_pool_file(path: Path, root: Path, expected: dict) -> tuple[list[dict], list[dict]]:
    data, rate, error = _read(path)
    if error:
        return [_issue("unreadable", path, root, error)], []
    problems, warnings = _signal_issues(data, path, root, silent_is_problem=True)
    if expected.get("sample_rate") and rate != expected["sample_rate"]:
        problems.append(_issue("rate", path, root,
                               f"{rate} Hz, expected {expected['sample_rate']}"))
    if expected.get("channels") and data.shape[1] != expected["channels"]:
        problems.append(_issue("channels", path, root,
                               f"{data.shape[1]} channels, expected {expected['channels']}"))
    return problems, warnings


def check_corpus(root: str | Path, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Check a corpus folder -> report dict (``problems``, ``warnings``, ``summary``...)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UnweaveError(f"{root}: " + ("not a folder" if root.exists() else "folder not found"))
    info_path = root / "dataset.json"
    expected = json.loads(info_path.read_text()) if info_path.is_file() else {}
    problems, warnings = [], []
    items = files = 0
    splits = [root / s for s in ("train", "valid", "test") if (root / s).is_dir()] or [root]
    for split in splits:
        for folder in sorted(p for p in split.iterdir() if p.is_dir()):
            wavs = sorted(p for p in folder.glob("*.wav") if not p.name.startswith("."))
            if expected.get("task") == "denoise" or folder.name in ("speech", "noise"):
                for path in wavs:
                    p, w = check_pool_file(path, root, expected)
                    problems += p
                    warnings += w
                files += len(wavs)
                continue
            if not wavs:
                continue
            p, w = check_item(folder, root, expected, tolerance)
            problems += p
            warnings += w
            items += 1
            files += len(wavs)
    if items == 0 and files == 0:
        problems.append({"kind": "empty", "path": ".", "detail": "no audio items found"})
    if expected and not (root / "manifest.csv").is_file():
        warnings.append({"kind": "manifest", "path": ".", "detail": "manifest.csv missing"})
    return {
        "dir": str(root), "task": expected.get("task"), "items": items, "files": files,
        "problems": problems, "warnings": warnings,
        "summary": dict(Counter(p["kind"] for p in problems)),
        "warning_summary": dict(Counter(w["kind"] for w in warnings)),
    }


def format_report(report: dict, max_rows: int = 40) -> str:
    """Human-readable table of a check report."""
    lines = [(f"{report['dir']}: task {report['task'] or '?'}, {report['items']} items, "
              f"{report['files']} files")]
    rows = [("problem", *(p[k] for k in ("kind", "path", "detail"))) for p in report["problems"]]
    rows += [("warning", *(w[k] for k in ("kind", "path", "detail"))) for w in report["warnings"]]
    if rows:
        header = ("level", "kind", "path", "detail")
        shown = rows[:max_rows]
        widths = [max(len(str(r[i])) for r in [header, *shown]) for i in range(3)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
        lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths), "-" * 6)]
        lines += [fmt.format(*r) for r in shown]
        if len(rows) > max_rows:
            lines.append(f"... {len(rows) - max_rows} more (use --json for all)")
    summary = ", ".join(f"{k}: {v}" for k, v in report["summary"].items()) or "none"
    lines.append(f"problems: {len(report['problems'])} ({summary}); "
                 f"warnings: {len(report['warnings'])}")
    lines.append("OK" if not report["problems"] else "FAILED")
    return "\n".join(lines)
