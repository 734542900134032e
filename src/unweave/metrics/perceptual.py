"""Perceptual speech metrics through optional packages: PESQ (``pesq``) and STOI (``pystoi``).

Both are mono, speech-oriented measures; install them with ``pip install 'unweave[quality]'``.
Without the package, the functions raise :class:`MissingDependencyError` (a one-line
:class:`~unweave.errors.UnweaveError`, also an ``ImportError``).

* PESQ (ITU-T P.862): signals are resampled with soxr to 16 kHz (wideband, ``mode="wb"``,
  P.862.2) or 8 kHz (narrowband, ``mode="nb"``); scores are MOS-LQO, about 1.0 to 4.64.
  Utterances PESQ cannot score (silence, too short) give NaN.
* STOI (Taal et al., 2011): pystoi resamples to 10 kHz itself; 0 to 1 (``extended=True``: ESTOI).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import numpy as np

from ..errors import UnweaveError
from .sdr import Array, to_numpy

PESQ_RATES = {"wb": 16000, "nb": 8000}


class MissingDependencyError(UnweaveError, ImportError):
    """An optional package needed by a metric is not installed."""


def _require(module: str, package: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs the '{package}' package: pip install {package} "
            f"(or pip install 'unweave[quality]')"
        ) from None


def _batched(
    references: Array, estimates: Array, score: Callable[[np.ndarray, np.ndarray], float]
) -> np.ndarray:
    """Apply a mono scorer over all leading axes. (..., T), (..., T) -> (...)."""
    ref, est = to_numpy(references), to_numpy(estimates)
    if ref.shape != est.shape:
        raise ValueError(f"references {ref.shape} and estimates {est.shape} differ in shape")
    flat_ref = ref.reshape(-1, ref.shape[-1])
    flat_est = est.reshape(-1, est.shape[-1])
    out = np.array([score(r, e) for r, e in zip(flat_ref, flat_est)], dtype=np.float64)
    return out.reshape(ref.shape[:-1])


def pesq_score(
    references: Array, estimates: Array, sample_rate: int, *, mode: str = "wb"
) -> np.ndarray:
    """PESQ MOS-LQO of each estimate against its reference.

    Args:
        references: clean speech.
        estimates: processed speech, same shape.
        sample_rate: Hz of both inputs; resampled (soxr) to 16 kHz (``"wb"``) or 8 kHz (``"nb"``).
        mode: ``"wb"`` wideband P.862.2 or ``"nb"`` narrowband P.862.

    Shape:
        references, estimates: (..., T) -> (...) float64 (NaN where PESQ finds no utterance).
    """
    if mode not in PESQ_RATES:
        raise ValueError(f"mode must be 'wb' or 'nb', got {mode!r}")
    pesq_mod = _require("pesq", "pesq", "PESQ")
    soxr = _require("soxr", "soxr", "PESQ resampling")
    target = PESQ_RATES[mode]

    def one(ref: np.ndarray, est: np.ndarray) -> float:
        if not np.any(ref) or not np.any(est):
            return float("nan")  # PESQ normalises by the peak: nothing to score
        if int(sample_rate) != target:
            ref = soxr.resample(ref, int(sample_rate), target)
            est = soxr.resample(est, int(sample_rate), target)
        try:
            ref32, est32 = ref.astype(np.float32), est.astype(np.float32)
            return float(pesq_mod.pesq(target, ref32, est32, mode))
        except (pesq_mod.PesqError, ValueError):  # no utterance detected, too short, ...
            return float("nan")

    return _batched(references, estimates, one)


def stoi_score(
    references: Array, estimates: Array, sample_rate: int, *, extended: bool = False
) -> np.ndarray:
    """Short-time objective intelligibility (0 to 1) of each estimate; ESTOI with ``extended``.

    Shape:
        references, estimates: (..., T) -> (...) float64.
    """
    pystoi = _require("pystoi", "pystoi", "STOI")

    def one(ref: np.ndarray, est: np.ndarray) -> float:
        return float(pystoi.stoi(ref, est, int(sample_rate), extended=extended))

    return _batched(references, estimates, one)
