"""Typed training configuration: nested dataclasses loaded from YAML recipes plus overrides.

A recipe is a YAML mapping with the sections of ``Config`` (model, data, optim, train, gan,
out_dir). ``load_config(path, overrides)`` reads it, applies ``key=value`` overrides with dotted
keys (``optim.lr=3e-4``, ``data.augment.gain_db=3``, ``model.kwargs.depth=4``) and checks every
key and value against the dataclass field types; errors name the key:
``optim.lrr: unknown key (known: name, lr, ...)``, ``train.steps: expected int, got 'many'``.
Fields typed ``dict`` (model kwargs, loss kwargs) accept any sub-keys.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UnweaveError


class ConfigError(UnweaveError):
    """A recipe or override has an unknown key or a value of the wrong type."""


@dataclass
class ModelConfig:
    arch: str = "conv_tasnet"  # registry name (unweave.registry)
    kwargs: dict = field(default_factory=dict)  # constructor keyword arguments
    tiny: bool = False  # start from the architecture's tiny config; kwargs override it
    init: str = ""  # optional model checkpoint to start from (fine-tuning, GAN stage)


@dataclass
class AugmentConfig:
    """Per-source augmentation (applied before the mixture is summed). 0 disables an entry."""

    gain_db: float = 0.0  # random gain, uniform in +-gain_db dB per source
    channel_swap: float = 0.0  # probability of swapping left/right per source (stereo only)
    sign_flip: float = 0.0  # probability of flipping the sign per source
    shift_seconds: float = 0.0  # random time offset per source, up to this many seconds
    speed: float = 0.0  # random speed (pitch+tempo) change, uniform in +-speed (0.05 = 5 %)
    speed_per_source: bool = False  # each source its own speed (stems not in time, e.g. sfx)
    eq_prob: float = 0.0  # probability of a random EQ curve (shelves + peak) per source
    eq_db: float = 6.0  # maximum EQ band gain in dB
    reverb_prob: float = 0.0  # probability of synthetic reverb per source
    rt60: list[float] = field(default_factory=lambda: [0.1, 0.6])  # reverb time range, seconds
    reverb_sources: list[str] = field(default_factory=list)  # sources to reverb ([] = all)
    eq_sources: list[str] = field(default_factory=list)  # sources to EQ ([] = all)
    # a gain range per named source, {source: [low_db, high_db]}, drawn uniformly on top of
    # gain_db (e.g. {sfx: [-8, 0]}: effects up to 8 dB quieter than the corpus mixes them)
    source_gain_db: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    root: str = ""  # corpus folder or training pack file
    segment: float = 4.0  # training segment, seconds
    batch_size: int = 8
    sources: list[str] = field(default_factory=list)  # corpus stems to load ([] = all)
    remix: float = 0.0  # probability of drawing each stem from a different track
    fill_silent: float = 0.0  # probability of replacing a silent stem window by another track's
    fill_sources: list[str] = field(default_factory=list)  # stems fill_silent applies to ([] = all)
    snr_db: list[float] = field(default_factory=lambda: [-5.0, 10.0])  # denoise corpora
    level_db: list[float] = field(default_factory=lambda: [-35.0, -15.0])  # denoise mix RMS
    num_workers: int = 0  # DataLoader worker processes
    memory_mb: float = 2048.0  # decode the corpus into memory when it fits in this budget
    valid_segment: float = 10.0  # seconds of each validation item (0 = whole track)
    valid_items: int = 16  # at most this many validation items
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"  # cosine | step | none
    warmup: int = 0  # linear warm-up steps
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    step_size: int = 1000  # step schedule: multiply lr by gamma every step_size steps
    gamma: float = 0.5
    clip_grad: float = 0.0  # max gradient norm (0 = no clipping)


@dataclass
class LossConfig:
    name: str = "l1"  # a name from unweave.losses.LOSSES, or "sum" with kwargs.terms
    kwargs: dict = field(default_factory=dict)
    # per-source weights by name, e.g. {music: 2.0}; sources left out weigh 1 (empty = the plain
    # loss over all sources at once)
    source_weights: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    steps: int = 1000
    eval_every: int = 250  # validation period in steps (0 = only at the end)
    checkpoint_every: int = 250  # checkpoint period in steps (always also at exit)
    log_every: int = 10  # metrics.jsonl period in steps
    ema_decay: float = 0.999  # 0 disables the EMA (the exported model is then the raw weights)
    amp: bool = False  # mixed precision (CUDA only; ignored on CPU)
    amp_dtype: str = "bfloat16"  # bfloat16 | float16 (float16 uses a GradScaler)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads (0 = leave as is)
    # si_sdr | sdr | loss, or one source's score (sdr/bass): validation score that picks best.pt
    best_metric: str = "si_sdr"
    progress: bool = True  # tqdm progress bar
    plots: bool = True  # loss.png / valid.png after each validation
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class GanConfig:
    """Optional adversarial stage (LSGAN) for speech models; see ``unweave.train.gan``."""

    enabled: bool = False
    disc: str = "spec"  # spec | wave
    channels: int = 16  # discriminator width
    lr: float = 1e-4  # discriminator learning rate (Adam)
    start_step: int = 0  # step at which the GAN stage starts
    pretrain_steps: int = 200  # discriminator-only steps before adversarial fine-tuning
    adv_weight: float = 0.05  # weight of the adversarial term beside the reconstruction loss
    feature_weight: float = 1.0  # feature-matching weight (0 disables)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    out_dir: str = "runs/default"


# ---------------------------------------------------------------- typed conversion
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the field type ``tp``; numeric strings ("3e-4") are accepted."""
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return _from_dict(tp, value, key + ".")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not number.is_integer():
            raise bad
        return int(number)
    if tp is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise bad
        return str(value)
    raise bad


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(fields)})")
        kwargs[key] = _coerce(value, fields[key], prefix + key)
    return cls(**kwargs)


CHOICES = {
    ("optim", "name"): ("adam", "adamw", "sgd"),
    ("optim", "schedule"): ("cosine", "step", "none"),
    ("train", "amp_dtype"): ("bfloat16", "float16"),
    ("gan", "disc"): ("spec", "wave"),
}


def _check(config: Config) -> Config:
    """Check the fields that take one of a few names, and simple ranges."""
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(config, section), key)
        if value not in allowed:
            raise ConfigError(f"{section}.{key}: {value!r} is not one of {', '.join(allowed)}")
    metric, slash, source = config.train.best_metric.partition("/")
    if metric not in (("si_sdr", "sdr") if slash else ("si_sdr", "sdr", "loss")) or (
            slash and not source):
        raise ConfigError(f"train.best_metric: {config.train.best_metric!r} is not one of "
                          "si_sdr, sdr, loss, si_sdr/SOURCE, sdr/SOURCE")
    if config.train.steps < 1:
        raise ConfigError("train.steps: must be >= 1")
    if config.data.batch_size < 1:
        raise ConfigError("data.batch_size: must be >= 1")
    if not 0.0 <= config.train.ema_decay < 1.0:
        raise ConfigError("train.ema_decay: must be in [0, 1)")
    if config.data.segment <= 0:
        raise ConfigError("data.segment: must be > 0 seconds")
    return config


def config_from_dict(data: dict) -> Config:
    """Build a ``Config`` from a plain mapping, checking keys, types and named choices."""
    if not isinstance(data, dict):
        raise ConfigError(f"recipe must be a mapping, got {type(data).__name__}")
    return _check(_from_dict(Config, data))


def config_to_dict(config: Config) -> dict:
    """Plain-data view (for YAML printing and checkpoint meta)."""
    return dataclasses.asdict(config)


def apply_override(data: dict, override: str) -> None:
    """Apply one ``dotted.key=value`` override to the plain mapping ``data`` in place.

    The value is parsed as YAML (``3e-4``, ``true``, ``[1, 2]``, ``{a: 1}``); keys are checked
    later by ``config_from_dict`` (unknown keys inside dict-typed fields are allowed).
    """
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value")
    key, raw = override.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override {override!r}: malformed key")
    # Walk the dataclass types alongside the mapping so that a bad path fails with its name.
    node, cls = data, Config
    for depth, part in enumerate(parts[:-1]):
        path = ".".join(parts[: depth + 1])
        if cls is not None:
            fields = _fields(cls)
            if part not in fields:
                raise ConfigError(f"{path}: unknown key (known: {', '.join(fields)})")
            tp = fields[part]
            cls = tp if dataclasses.is_dataclass(tp) else None
            if cls is None and tp is not dict:
                raise ConfigError(f"{path}: is a {_type_name(tp)}, it has no sub-keys")
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML recipe (or start from defaults with ``path=None``) and apply overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: recipe must be a YAML mapping")
    for item in overrides:
        apply_override(data, item)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        if path is not None and not overrides:
            raise ConfigError(f"{path}: {exc}") from None
        raise


def dump_config(config: Config) -> str:
    """The resolved config as YAML text (printed at the start of training)."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
