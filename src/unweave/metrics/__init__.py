"""Separation quality metrics.

* :mod:`.sdr`: SI-SDR, SNR, the MDX utterance SDR (torch or NumPy, batched over leading axes)
  and museval's framewise-median SDR (BSS Eval v4 image SDR on 1 s frames).
* :mod:`.bsseval`: the full BSS Eval v4 decomposition (SDR, ISR, SIR, SAR; 512-tap filters).
* :mod:`.perceptual`: PESQ and STOI through the optional ``pesq`` / ``pystoi`` packages.
"""

from .bsseval import bss_eval_v4, bss_eval_v4_median
from .perceptual import MissingDependencyError, pesq_score, stoi_score
from .sdr import (
    mdx_sdr,
    sdr_framewise,
    sdr_museval,
    sdr_v4_simple,
    si_sdr,
    snr,
)

__all__ = [
    "MissingDependencyError",
    "bss_eval_v4",
    "bss_eval_v4_median",
    "mdx_sdr",
    "pesq_score",
    "sdr_framewise",
    "sdr_museval",
    "sdr_v4_simple",
    "si_sdr",
    "snr",
    "stoi_score",
]
