"""The training loop: recipe -> model, data, optimizer -> checkpoints, metrics, curves.

``Trainer(config).run()`` trains ``config.train.steps`` steps and writes to ``config.out_dir``:

- ``model.pt``: the exported model (EMA weights), a plain-data checkpoint
  (``unweave.pretrained.checkpoint``) whose ``meta`` holds the resolved config, the step and
  the latest validation scores; ``best.pt``: the same at the best validation score;
- ``state.pt``: what ``--resume`` needs (raw weights, optimizer, EMA, GradScaler, GAN, step,
  RNG states, best score), plain tensors and containers (``torch.load(weights_only=True)``);
- ``metrics.jsonl`` (see ``unweave.train.plots``), ``loss.png``, ``valid.png``, ``config.yaml``.

Checkpoints are written every ``checkpoint_every`` steps and at exit, including on
KeyboardInterrupt and SIGTERM. The mixture of each example is the sum of its (augmented)
stems; a model source that the corpus lacks (e.g. "accompaniment") is the mixture minus the
other targets. Each step's data and augmentation depend only on (seed, step, rank), so a
resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from .. import losses
from ..data.augment import Augmenter
from ..data.dataset import make_dataset, open_corpus
from ..errors import UnweaveError
from ..metrics.sdr import mdx_sdr, si_sdr
from ..pretrained.checkpoint import read_checkpoint, save_checkpoint
from ..registry import build_model, build_tiny
from . import distributed as dist_utils
from .checkpoint import load_state, save_state
from .config import Config, config_to_dict, dump_config
from .ema import EMA
from .gan import GanStage
from .plots import plot_metrics


def lr_at(cfg, step: int, total: int) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine, step or constant."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))
        floor = cfg.min_lr_ratio
        return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** ((step - cfg.warmup) // max(1, cfg.step_size))
    if cfg.schedule == "none":
        return cfg.lr
    raise UnweaveError(f"optim.schedule: unknown schedule {cfg.schedule!r} (cosine, step, none)")


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                 weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise UnweaveError(f"optim.name: unknown optimizer {cfg.name!r} (adam, adamw, sgd)")


def target_plan(model_sources, data_sources) -> tuple[list[int | None], str | None]:
    """Index of each model source in the data stems; ``None`` marks the one residual source
    (mixture minus the others). Raises if more than one model source is missing."""
    plan = [data_sources.index(s) if s in data_sources else None for s in model_sources]
    missing = [s for s, i in zip(model_sources, plan, strict=True) if i is None]
    if len(missing) > 1 or (missing and len(model_sources) == 1):
        raise UnweaveError(f"model sources {', '.join(missing)} are not in the corpus stems "
                           f"({', '.join(data_sources)}); one of several model sources may be the "
                           "residual (mixture minus the others), no more")
    return plan, (missing[0] if missing else None)


def make_targets(stems: torch.Tensor, mix: torch.Tensor, plan: list[int | None]) -> torch.Tensor:
    """``stems: (B, S_data, C, T), mix: (B, C, T) -> targets (B, S_model, C, T)``."""
    known = [stems[:, i] for i in plan if i is not None]
    residual = mix - sum(known) if len(known) < len(plan) else None
    return torch.stack([stems[:, i] if i is not None else residual for i in plan], dim=1)


class Trainer:
    """Runs one recipe. ``log`` receives human-readable lines (rank 0 only)."""

    def __init__(self, config: Config, *, resume: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.resume = config, resume
        self.info = dist_utils.dist_info()
        self.log = log if self.info.is_main else (lambda _msg: None)
        self.out = Path(config.out_dir)
        self._stop_reason: str | None = None
        self.extra_log: dict[str, float] = {}

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        cfg = self.cfg
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        self.device = dist_utils.pick_device(cfg.train.device, self.info)
        dist_utils.init_process_group(self.info, self.device)
        torch.manual_seed(cfg.train.seed + self.info.rank)
        try:
            build = build_tiny if cfg.model.tiny else build_model
            model = build(cfg.model.arch, **cfg.model.kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnweaveError(f"model: cannot build {cfg.model.arch!r}: {exc}") from None
        if cfg.model.init:
            payload = read_checkpoint(cfg.model.init)
            try:
                model.load_state_dict(payload["state_dict"])
            except RuntimeError as exc:
                raise UnweaveError(f"{cfg.model.init}: weights do not fit the recipe's model "
                                   f"(model.init needs the same arch and kwargs): "
                                   f"{str(exc).splitlines()[0]}") from None
        self.raw_model = model.to(self.device)
        self.sources = tuple(model.sources)
        self.sample_rate, self.channels = int(model.sample_rate), int(model.audio_channels)

        d = cfg.data
        if not d.root:
            raise UnweaveError("data.root: no corpus given (a folder or a training pack)")
        corpus = open_corpus(d.root, self.sample_rate, memory_mb=d.memory_mb)
        self.length = round(d.segment * self.sample_rate)
        data_sources = d.sources or None
        probe = make_dataset(corpus, "train", sources=data_sources, sample_rate=self.sample_rate,
                             channels=self.channels, segment_seconds=d.segment)
        self.augment = Augmenter(self.sample_rate, probe.sources, **asdict(d.augment))
        extra = self.augment.input_length(self.length) - self.length
        common = {"sources": data_sources, "sample_rate": self.sample_rate,
                  "channels": self.channels, "segment_seconds": d.segment, "remix": d.remix,
                  "snr_db": tuple(d.snr_db), "level_db": tuple(d.level_db),
                  "seed": cfg.train.seed}
        self.train_set = make_dataset(corpus, "train", extra_length=extra,
                                      fill_silent=d.fill_silent,
                                      fill_sources=tuple(d.fill_sources), **common)
        self.plan, residual = target_plan(self.sources, self.train_set.sources)
        self.valid_items = []
        if self.info.is_main and (corpus.tracks.get("valid") or corpus.speech.get("valid")):
            valid_set = make_dataset(corpus, "valid", **common)
            self.valid_items = valid_set.valid_items(d.valid_items, d.valid_segment)

        self.optim = build_optimizer(cfg.optim, self.raw_model.parameters())
        self.ema = EMA(self.raw_model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        self.use_amp = bool(cfg.train.amp and self.device.type == "cuda")
        if cfg.train.amp and not self.use_amp:
            self.log("note: train.amp applies to CUDA only; training in float32 on the CPU")
        self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(
            cfg.train.amp_dtype)
        if self.amp_dtype is None:
            raise UnweaveError(f"train.amp_dtype: {cfg.train.amp_dtype!r} (bfloat16, float16)")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp
                                           and self.amp_dtype == torch.float16)
        self.gan = GanStage(cfg.gan, audio_channels=self.channels, device=self.device) \
            if cfg.gan.enabled else None
        try:
            name, kwargs = cfg.train.loss.name, cfg.train.loss.kwargs
            weights = dict(cfg.train.loss.source_weights or {})
            unknown = sorted(set(weights) - set(self.sources))
            if unknown:
                raise ValueError(f"source_weights names {', '.join(map(str, unknown))}, not a "
                                 f"source of the model ({', '.join(self.sources)})")
            self.loss_fn = losses.get_weighted_loss(
                name, [float(weights.get(s, 1.0)) for s in self.sources], **kwargs) \
                if weights else losses.get_loss(name, **kwargs)
        except (ValueError, TypeError) as exc:
            raise UnweaveError(f"train.loss: {exc}") from None
        _, _, source = cfg.train.best_metric.partition("/")
        if source and source not in self.sources:
            raise UnweaveError(f"train.best_metric: {cfg.train.best_metric!r} names no source "
                               f"of the model ({', '.join(self.sources)})")
        self.model = self.raw_model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.raw_model, device_ids=ids)
        self.step, self.best, self.best_step = 0, None, None
        if self.resume:
            self._load_state()
        loader_kw = {"num_workers": d.num_workers, "pin_memory": self.device.type == "cuda"}
        if d.num_workers > 0:
            loader_kw.update(persistent_workers=True, prefetch_factor=4)
        self.loader = torch.utils.data.DataLoader(
            self.train_set, batch_sampler=dist_utils.StepBatchSampler(
                d.batch_size, self.step, self.info), **loader_kw)
        params = sum(p.numel() for p in self.raw_model.parameters())
        self.log(f"model {cfg.model.arch}: {params / 1e6:.3f} M parameters, sources "
                 f"{', '.join(self.sources)}"
                 + (f" ({residual} = mixture - others)" if residual else "")
                 + f"; {self.sample_rate} Hz, {self.channels} ch; device {self.device}"
                 + (f", world {self.info.world_size}" if self.info.enabled else ""))
        self.log(f"data {d.root}: stems {', '.join(self.train_set.sources)}, "
                 f"{len(self.valid_items)} validation items")

    # ------------------------------------------------------------------ state
    def _autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def _export_state(self) -> dict[str, torch.Tensor]:
        if self.ema is not None:
            return self.ema.model_state(self.raw_model)
        return {k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()}

    def _meta(self, metrics: dict | None = None) -> dict:
        return {"config": config_to_dict(self.cfg), "step": self.step,
                "sources": list(self.sources), "sample_rate": self.sample_rate,
                "best": self.best, "best_step": self.best_step,
                "valid": dict(metrics or self.last_valid or {})}

    def save(self) -> None:
        """Write ``model.pt`` and ``state.pt`` (rank 0)."""
        if not self.info.is_main:
            return
        save_checkpoint(self.raw_model, self.out / "model.pt", arch=self.cfg.model.arch,
                        meta=self._meta(), state_dict=self._export_state())
        save_state(self.out / "state.pt", {
            "step": self.step,
            "model": self.raw_model.state_dict(),
            "optim": self.optim.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "gan": self.gan.state_dict() if self.gan is not None else None,
            "best": self.best, "best_step": self.best_step, "last_valid": self.last_valid,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "arch": self.cfg.model.arch, "config": config_to_dict(self.cfg),
        })

    def _load_state(self) -> None:
        path = self.out / "state.pt"
        state = load_state(path)
        if state.get("arch") != self.cfg.model.arch:
            raise UnweaveError(f"{path}: saved for arch {state.get('arch')!r}, recipe says "
                               f"{self.cfg.model.arch!r}")
        try:
            self.raw_model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise UnweaveError(f"{path}: weights do not match the recipe's model "
                               f"({str(exc).splitlines()[0]})") from None
        self.optim.load_state_dict(state["optim"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.gan is not None and state.get("gan"):
            self.gan.load_state_dict(state["gan"])
        self.step, self.best, self.best_step = int(state["step"]), state["best"], \
            state["best_step"]
        self.last_valid = state.get("last_valid")
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.log(f"resumed from {path} at step {self.step}")

    def _write_metrics(self, record: dict) -> None:
        if self.info.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _trim_metrics(self) -> None:
        """On resume, drop log records written after the checkpoint being resumed."""
        path = self.out / "metrics.jsonl"
        if self.info.is_main and path.is_file():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= self.step]
            path.write_text("".join(line + "\n" for line in keep))

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: torch.Tensor) -> float:
        """One optimisation step on ``batch: (B, S_data, C, L)``; returns the loss."""
        self.extra_log = {}  # GAN losses of this step, for metrics.jsonl
        gen = torch.Generator().manual_seed(
            (self.cfg.train.seed * 1_000_003 + self.step * self.info.world_size + self.info.rank)
            % 2**63)
        stems = self.augment(batch.to(self.device, non_blocking=True), self.length, gen)
        mix = stems.sum(1)  # (B, C, T): the stems sum to the mixture by construction
        target = make_targets(stems, mix, self.plan)
        lr = lr_at(self.cfg.optim, self.step, self.cfg.train.steps)
        for group in self.optim.param_groups:
            group["lr"] = lr
        phase = self.gan.phase(self.step) if self.gan is not None else "off"
        if phase == "pretrain":  # discriminator only; the separator is frozen
            with torch.no_grad(), self._autocast():
                est = self.model(mix).float()
            self.extra_log = {"d_loss": self.gan.d_step(target, est)}
            return float(self.loss_fn(est, target, mix))
        with self._autocast():
            est = self.model(mix)
        loss = self.loss_fn(est.float(), target, mix)
        total = loss
        if phase == "adversarial":
            adv = self.gan.g_loss(target, est.float())
            total = loss + adv
            self.extra_log = {"adv_loss": float(adv.detach())}
        if not torch.isfinite(total):
            self.optim.zero_grad(set_to_none=True)
            return float("nan")
        self.optim.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.clip_grad > 0:
            self.scaler.unscale_(self.optim)
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.cfg.optim.clip_grad)
        self.scaler.step(self.optim)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        if phase == "adversarial":
            self.extra_log["d_loss"] = self.gan.d_step(target, est.float())
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, baseline: bool = False) -> dict:
        """Loss, SDR (MDX utterance SDR) and SI-SDR (dB, per source and their mean) of the
        exported weights on the validation items; silent references are left out.
        ``baseline=True`` scores the mixture itself as every source's estimate instead."""
        if not self.valid_items:
            return {}
        if baseline:
            def forward(mix: torch.Tensor) -> torch.Tensor:  # the mixture for every source
                return mix.unsqueeze(1).expand(-1, len(self.sources), -1, -1)
        else:
            if not hasattr(self, "_eval_model"):
                self._eval_model = copy.deepcopy(self.raw_model)
            forward = self._eval_model
            forward.load_state_dict(self._export_state())
            forward.eval()
        sums: dict[str, list[float]] = {}
        for _name, stems in self.valid_items:
            stems = stems.unsqueeze(0).to(self.device)  # (1, S_data, C, T)
            mix = stems.sum(1)
            target = make_targets(stems, mix, self.plan)
            with self._autocast():
                est = forward(mix).float()
            sums.setdefault("loss", []).append(float(self.loss_fn(est, target, mix)))
            silent = target.pow(2).mean((-2, -1))[0] < 1e-8  # (S,): skip absent sources
            # As ``unweave evaluate``: SI-SDR per channel averaged, MDX SDR over (C, T).
            sisdr = si_sdr(target, est).mean(-1)[0]  # (S,)
            sdr = mdx_sdr(target, est, dim=(-2, -1))[0]  # (S,)
            for s, name in enumerate(self.sources):
                if not silent[s]:
                    sums.setdefault(f"si_sdr/{name}", []).append(float(sisdr[s]))
                    sums.setdefault(f"sdr/{name}", []).append(float(sdr[s]))
        metrics = {k: sum(v) / len(v) for k, v in sums.items()}
        for metric in ("si_sdr", "sdr"):
            per = [metrics[f"{metric}/{n}"] for n in self.sources if f"{metric}/{n}" in metrics]
            if per:
                metrics[metric] = sum(per) / len(per)
        return metrics

    def _after_validation(self, metrics: dict) -> None:
        self.last_valid = metrics
        self._write_metrics({"kind": "valid", "step": self.step, **metrics})
        key = self.cfg.train.best_metric
        if key not in metrics:
            return
        value = metrics[key]
        better = self.best is None or (value < self.best if key == "loss" else value > self.best)
        if better and self.info.is_main:
            self.best, self.best_step = value, self.step
            save_checkpoint(self.raw_model, self.out / "best.pt", arch=self.cfg.model.arch,
                            meta=self._meta(metrics), state_dict=self._export_state())
        summary = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if "/" not in k)
        self.log(f"step {self.step}: valid {summary} (best {key} {self.best:.3f} at step "
                 f"{self.best_step})")

    # ------------------------------------------------------------------ loop
    def _on_sigterm(self, signum, _frame) -> None:
        self._stop_reason = f"signal {signum}"

    def _should_stop(self) -> bool:
        """Whether any rank was asked to stop (all ranks must stop at the same step)."""
        if self.info.enabled:
            flag = torch.tensor([1.0 if self._stop_reason else 0.0], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() and not self._stop_reason:
                self._stop_reason = "another rank stopped"
        return self._stop_reason is not None

    def run(self) -> dict:
        """Train to ``train.steps``; returns ``{"step", "best", "best_step", "valid",
        "stopped"}`` (``stopped``: the reason for an early stop, e.g. "signal 15", or None)."""
        self.last_valid = None
        self.log("resolved config:\n" + dump_config(self.cfg).rstrip())
        self._setup()  # before the run folder exists: a bad recipe leaves no empty folder
        self.out.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            (self.out / "config.yaml").write_text(dump_config(self.cfg))
            if self.resume:
                self._trim_metrics()
            else:  # a fresh run in a used folder starts a fresh log
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
                base = self.validate(baseline=True)
                if base:
                    self._write_metrics({"kind": "baseline", "step": 0, **base})
                    self.log("validation baseline (the mixture as estimate): " + ", ".join(
                        f"{k} {v:.3f}" for k, v in base.items() if "/" not in k))
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._loop()
        except KeyboardInterrupt:
            self.log(f"interrupted at step {self.step}: saving checkpoint")
            self.save()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            dist_utils.shutdown(self.info)
        return {"step": self.step, "best": self.best, "best_step": self.best_step,
                "valid": self.last_valid, "stopped": self._stop_reason}

    def _loop(self) -> None:
        t = self.cfg.train
        from tqdm import tqdm

        bar = tqdm(total=t.steps, initial=self.step, disable=not (t.progress and
                                                                  self.info.is_main),
                   dynamic_ncols=True, unit="step")
        batches = iter(self.loader)
        rate, last, bad = None, time.perf_counter(), 0
        self.raw_model.train()
        while self.step < t.steps and not self._should_stop():
            try:
                batch = next(batches)
            except Exception:  # a signal to the process group also kills the loader workers
                if self._stop_reason:
                    break
                raise
            loss = self.train_step(batch)
            self.step += 1
            now = time.perf_counter()
            sps = batch.shape[0] * self.info.world_size / max(now - last, 1e-9)
            rate = sps if rate is None else 0.9 * rate + 0.1 * sps
            last = now
            bad = bad + 1 if not math.isfinite(loss) else 0
            if bad >= 20:
                raise UnweaveError(f"train: loss not finite for {bad} steps in a row at step "
                                   f"{self.step} (lower optim.lr or enable clip_grad)")
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", sps=f"{rate:.1f}")
            if t.log_every and self.step % t.log_every == 0:
                self._write_metrics({"kind": "train", "step": self.step, "loss": loss,
                                     **self.extra_log, "lr": self.optim.param_groups[0]["lr"],
                                     "samples_per_s": round(rate, 2)})
            at_end = self.step >= t.steps
            if self.info.is_main and ((t.eval_every and self.step % t.eval_every == 0)
                                      or at_end):
                self._after_validation(self.validate())
                self.raw_model.train()
                self._plot()
            if t.checkpoint_every and self.step % t.checkpoint_every == 0 and not at_end:
                self.save()
            dist_utils.barrier(self.info)
        bar.close()
        if self._stop_reason:
            self.log(f"stopping at step {self.step} ({self._stop_reason})")
            self._plot()  # (a finished run was plotted by its last validation)
        self.save()
        if self.info.is_main:
            self.log(f"done at step {self.step}; checkpoints in {self.out}")

    def _plot(self) -> None:
        if not (self.info.is_main and self.cfg.train.plots):
            return
        try:
            plot_metrics(self.out / "metrics.jsonl")
        except Exception as exc:  # noqa: BLE001 - plots are a convenience, never fatal
            self.log(f"warning: could not draw curves ({exc.__class__.__name__}: {exc})")
