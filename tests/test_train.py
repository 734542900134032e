"""Training pipeline: a tiny run learns and checkpoints, resumes, type-checks overrides;
datasets, packs, schedules and EMA on hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.data.dataset import SpeechNoiseDataset, StemsDataset, open_corpus
from unweave.errors import UnweaveError
from unweave.pretrained.checkpoint import load_checkpoint
from unweave.train.config import ConfigError, OptimConfig, load_config
from unweave.train.ema import EMA
from unweave.train.pack import read_pack_header, write_pack
from unweave.train.trainer import Trainer, build_optimizer, lr_at, make_targets, target_plan

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny_test.yaml"
SR = 8000


def _write_stems_corpus(root: Path, tracks=(4, 2), seconds=2.0) -> Path:
    """Tracks of a sine stem (random pitch) and a white-noise stem, 8 kHz mono, 16-bit."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    for split, count in zip(("train", "valid"), tracks):
        for i in range(count):
            item = root / split / f"track{i}"
            item.mkdir(parents=True)
            sine = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 600) * t)
            sf.write(item / "sine.wav", sine, SR, subtype="PCM_16")
            sf.write(item / "noise.wav", 0.1 * rng.standard_normal(t.size), SR, subtype="PCM_16")
    (root / "dataset.json").write_text(json.dumps(
        {"task": "test", "sample_rate": SR, "channels": 1, "sources": ["sine", "noise"]}))
    return root


def _write_denoise_corpus(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for split in ("train", "valid"):
        for kind in ("speech", "noise"):
            (root / split / kind).mkdir(parents=True)
            for i in range(3):
                n = int(rng.uniform(0.3, 1.5) * SR)
                sf.write(root / split / kind / f"{kind}{i}.wav", 0.2 * rng.standard_normal(n), SR,
                         subtype="PCM_16")
    return root  # no dataset.json: the layout says "denoise"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _write_stems_corpus(tmp_path_factory.mktemp("corpus"))


def _config(corpus: Path, out: Path, *extra: str, plots: bool = False):
    return load_config(RECIPE, [f"data.root={corpus}", f"out_dir={out}",
                                f"train.plots={plots}", *extra])


def _train_losses(out: Path) -> dict[int, float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"}


# ---------------------------------------------------------------- the training loop
def test_tiny_run_learns_and_checkpoints(corpus, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(_config(corpus, out, plots=True), log=lambda _m: None).run()
    assert summary["step"] == 50
    losses = _train_losses(out)
    values = [losses[s] for s in sorted(losses)]
    assert len(values) == 50 and all(np.isfinite(values))
    assert np.mean(values[-10:]) < 0.8 * np.mean(values[:10])
    for name in ("model.pt", "best.pt", "state.pt", "metrics.jsonl", "loss.png", "valid.png"):
        assert (out / name).is_file(), name
    model = load_checkpoint(out / "model.pt")  # exported EMA weights, plain data
    assert model.sources == ("sine", "noise")
    assert model.checkpoint_meta["step"] == 50
    assert model.checkpoint_meta["config"]["optim"]["lr"] == pytest.approx(0.003)
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 50 and state["optim"]["state"][0]["step"].item() == 50
    assert (out / "model.pt").stat().st_size < 100_000


def test_resume_continues_like_an_uninterrupted_run(corpus, tmp_path):
    out, straight = tmp_path / "run", tmp_path / "straight"
    quiet = {"log": lambda _m: None}
    Trainer(_config(corpus, out, "train.steps=8", "train.eval_every=0"), **quiet).run()
    first_best = torch.load(out / "state.pt", weights_only=True)["best"]
    # Resume to step 11: the step counter and the optimizer state continue.
    resumed = Trainer(_config(corpus, out, "train.steps=11", "train.eval_every=0"), resume=True,
                      **quiet).run()
    assert resumed["step"] == 11
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 11 and state["optim"]["state"][0]["step"].item() == 11
    assert first_best is not None and state["best"] >= first_best
    losses = _train_losses(out)
    assert sorted(losses) == list(range(1, 12))
    # Data and augmentation depend on the step only, the weights and optimizer come back
    # exactly: steps 9-11 after resuming equal those of an uninterrupted run.
    Trainer(_config(corpus, straight, "train.steps=11", "train.eval_every=0"), **quiet).run()
    reference = _train_losses(straight)
    for step in (9, 10, 11):
        assert reference[step] == pytest.approx(losses[step], rel=1e-4)


def test_interrupt_saves_a_resumable_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = Trainer(_config(corpus, out, "train.eval_every=0", "train.checkpoint_every=0"),
                      log=lambda _m: None)
    original = Trainer.train_step

    def step_then_interrupt(self, batch):
        if self.step == 7:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 7
    assert load_checkpoint(out / "model.pt").checkpoint_meta["step"] == 7


def test_source_weights_reweight_the_loss_and_bad_names_fail(corpus, tmp_path):
    plain = Trainer(_config(corpus, tmp_path / "a", "train.steps=1"), log=lambda _m: None)
    heavy = Trainer(_config(corpus, tmp_path / "b", "train.steps=1",
                            "train.loss.source_weights={noise: 3.0}"), log=lambda _m: None)
    plain._setup()
    heavy._setup()
    est, ref = torch.zeros(1, 2, 1, 100), torch.zeros(1, 2, 1, 100)
    ref[:, 1] = 1.0  # an error on the noise only: weighted 3 / 4 instead of 1 / 2
    assert plain.loss_fn(est, ref).item() == pytest.approx(0.5)
    assert heavy.loss_fn(est, ref).item() == pytest.approx(0.75)
    with pytest.raises(UnweaveError, match="source_weights names vocals"):
        Trainer(_config(corpus, tmp_path / "c", "train.loss.source_weights={vocals: 2}"),
                log=lambda _m: None).run()
    with pytest.raises(UnweaveError, match="source_weights cannot split noise_huber"):
        Trainer(_config(corpus, tmp_path / "d", "train.loss.source_weights={noise: 2}",
                        "train.loss.name=sum", "train.loss.kwargs={terms: [{name: l1}, "
                        "{name: noise_huber, kwargs: {noise_index: 1}}]}"),
                log=lambda _m: None).run()


def test_best_metric_can_be_one_sources_score(corpus, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(_config(corpus, out, "train.steps=4", "train.eval_every=2",
                              "train.best_metric=sdr/noise"), log=lambda _m: None).run()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid" and r["step"] > 0]
    best = max(valid, key=lambda r: r["sdr/noise"])
    assert summary["best"] == pytest.approx(best["sdr/noise"])  # the stem's score, not the mean
    assert summary["best"] != pytest.approx(best["sdr"])
    assert load_checkpoint(out / "best.pt").checkpoint_meta["step"] == best["step"]
    with pytest.raises(UnweaveError, match="'sdr/vocals' names no source of the model"):
        Trainer(_config(corpus, tmp_path / "b", "train.best_metric=sdr/vocals"),
                log=lambda _m: None).run()
    assert not (tmp_path / "b").exists()  # a refused recipe leaves no empty run folder


def test_gan_stage_runs_and_is_saved(corpus, tmp_path):
    out = tmp_path / "gan"
    cfg = _config(corpus, out, "train.steps=6", "train.eval_every=0", "gan.enabled=true",
                  "gan.pretrain_steps=2", "gan.disc=wave", "gan.channels=4",
                  "train.loss.name=mrstft", "train.loss.kwargs={resolutions: [[128, 32]]}")
    Trainer(cfg, log=lambda _m: None).run()
    values = list(_train_losses(out).values())
    assert len(values) == 6 and all(np.isfinite(values))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert all(np.isfinite(r["d_loss"]) for r in train)
    assert [("adv_loss" in r) for r in train] == [False, False, True, True, True, True]
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["gan"]["optim"]["state"][0]["step"].item() == 6  # D learnt on every step
    assert state["optim"]["state"][0]["step"].item() == 4  # G frozen during D pre-training


# ---------------------------------------------------------------- config and overrides
def test_overrides_are_type_checked(tmp_path):
    cfg = load_config(RECIPE, ["optim.lr=3e-4", "train.steps=1e3", "model.kwargs.filters=8",
                               "train.amp=true", "data.augment.rt60=[0.2, 0.3]"])
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.train.steps == 1000
    assert cfg.model.kwargs["filters"] == 8 and cfg.train.amp is True
    assert cfg.data.augment.rt60 == [0.2, 0.3]
    cases = {
        "optim.lrr=1": "optim.lrr: unknown key",
        "train.steps=many": "train.steps: expected int, got 'many'",
        "train.steps=2.5": "train.steps: expected int",
        "optim.lr.x=1": "optim.lr: is a float",
        "data.augment.rt60=0.3": r"data.augment.rt60: expected list\[float\]",
        "nosection.x=1": "nosection: unknown key",
        "train.amp=maybe": "train.amp: expected bool",
        "optim.name=lamb": "optim.name: 'lamb' is not one of adam, adamw, sgd",
        "train.ema_decay=1": r"train.ema_decay: must be in \[0, 1\)",
        "train.best_metric=pesq": "train.best_metric: 'pesq' is not one of",
        "train.best_metric=loss/sine": "train.best_metric: 'loss/sine' is not one of",
        "train.best_metric=sdr/": "train.best_metric: 'sdr/' is not one of",
        "lr": "expected key=value",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_config(RECIPE, [override])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  nme: adam\n")
    with pytest.raises(ConfigError, match="bad.yaml: optim.nme: unknown key"):
        load_config(bad)


def test_lr_schedules():
    cos = OptimConfig(lr=1.0, warmup=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cos, 0, 110) == pytest.approx(0.1)
    assert lr_at(cos, 9, 110) == pytest.approx(1.0)
    assert lr_at(cos, 60, 110) == pytest.approx(0.55)
    assert lr_at(cos, 110, 110) == pytest.approx(0.1)
    step = OptimConfig(lr=1.0, schedule="step", step_size=5, gamma=0.5)
    assert [lr_at(step, s, 20) for s in (0, 4, 5, 12)] == [1.0, 1.0, 0.5, 0.25]


def test_optimizers_and_bad_names():
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                      ("sgd", torch.optim.SGD)):
        assert isinstance(build_optimizer(OptimConfig(name=name), params), cls)
    with pytest.raises(UnweaveError, match="unknown optimizer"):
        build_optimizer(OptimConfig(name="lamb"), params)
    with pytest.raises(UnweaveError, match="unknown schedule"):
        lr_at(OptimConfig(schedule="exp"), 0, 10)


def test_ema_tracks_weights():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(30):
        ema.update(model)
    assert torch.allclose(ema.model_state(model)["weight"], torch.ones(1, 2), atol=1e-4)
    fresh = EMA(model, decay=0.5)
    fresh.load_state_dict(ema.state_dict())
    assert fresh.updates == 30


# ---------------------------------------------------------------- data
def test_residual_target_is_mixture_minus_others():
    plan, residual = target_plan(("sine", "rest"), ("noise", "sine"))
    assert plan == [1, None] and residual == "rest"
    stems = torch.randn(2, 2, 1, 100)
    mix = stems.sum(1)
    targets = make_targets(stems, mix, plan)
    assert torch.allclose(targets[:, 1], stems[:, 0], atol=1e-6)
    with pytest.raises(UnweaveError):
        target_plan(("a", "b"), ("sine", "noise"))
    with pytest.raises(UnweaveError):  # a lone unknown source would just learn the mixture
        target_plan(("clean",), ("speech", "noise"))


def test_stems_dataset_is_deterministic_and_remixes(corpus):
    ds = StemsDataset(corpus, "train", None, 0.5, SR, 2, seed=3, remix=1.0, extra_length=10)
    item = ds[5]
    assert ds.sources == ("sine", "noise") and item.shape == (2, 2, 4010)
    assert torch.equal(item, ds[5]) and not torch.equal(item, ds[6])
    assert torch.equal(item[:, 0], item[:, 1])  # mono corpus, stereo output: duplicated
    plain = StemsDataset(corpus, "train", None, 0.5, SR, 1, memory_mb=0)  # read by window
    preload = StemsDataset(corpus, "train", None, 0.5, SR, 1)
    assert plain.tracks[0].stems["sine"].data is None
    assert preload.tracks[0].stems["sine"].data.dtype == np.int16
    assert torch.allclose(plain[2], preload[2], atol=1e-6)
    # At another rate, windows read from disk match the clip resampled once in memory.
    disk = open_corpus(corpus, 11025, memory_mb=0).tracks["train"][1].stems["sine"]
    memory = open_corpus(corpus, 11025).tracks["train"][1].stems["sine"]
    assert disk.data is None and memory.data.dtype == np.float16
    for start in (0, 3001, disk.frames - 2000):
        assert np.allclose(disk.read(start, 4000, 1), memory.read(start, 4000, 1), atol=1e-3)
    items = preload.valid_items(1, 1.0)  # centre windows of the first tracks
    assert len(items) == 1 and items[0][1].shape == (2, 1, SR)
    with pytest.raises(UnweaveError, match="no stem named vocals"):
        StemsDataset(corpus, "train", ["vocals"], 0.5, SR, 1)


def test_fill_silent_draws_a_silent_stem_from_another_track(tmp_path):
    """Tracks whose sine stem is silent (like a chorale's drums) give examples with a sine from
    another track when fill_silent is 1 (most of the time), and keep it silent when it is 0."""
    root = _write_stems_corpus(tmp_path / "c", tracks=(6, 1))
    for i in (0, 1, 2):  # half the training tracks: a silent sine stem
        sf.write(root / "train" / f"track{i}" / "sine.wav", np.zeros(2 * SR), SR,
                 subtype="PCM_16")

    def silent_share(ds):
        return np.mean([ds[i][0].pow(2).mean().sqrt().item() < 1e-3 for i in range(60)])

    plain = StemsDataset(root, "train", None, 0.5, SR, 1, seed=1)
    filled = StemsDataset(root, "train", None, 0.5, SR, 1, seed=1, fill_silent=1.0)
    assert silent_share(plain) > 0.3
    # a window stays silent only when all FILL_TRIES draws are silent too: (1/2)^4 here
    assert silent_share(filled) < 0.1
    for i in range(20):  # the noise stem is never touched
        assert torch.equal(plain[i][1], filled[i][1])
    only_noise = StemsDataset(root, "train", None, 0.5, SR, 1, seed=1, fill_silent=1.0,
                              fill_sources=["noise"])
    assert silent_share(only_noise) == silent_share(plain)
    with pytest.raises(UnweaveError, match="fill_silent"):
        StemsDataset(root, "train", None, 0.5, SR, 1, fill_silent=1.5)
    with pytest.raises(UnweaveError, match="fill_sources: no stem named drums"):
        StemsDataset(root, "train", None, 0.5, SR, 1, fill_silent=1.0, fill_sources=["drums"])


def test_speech_noise_dataset_mixes_at_snr(tmp_path):
    root = _write_denoise_corpus(tmp_path / "dn")
    ds = SpeechNoiseDataset(root, "train", 1.0, SR, 1, snr_db=(5.0, 5.0), level_db=(-20, -20))
    for index in range(5):
        speech, noise = ds[index]
        got = 10 * torch.log10(speech.pow(2).mean() / noise.pow(2).mean())
        assert got.item() == pytest.approx(5.0, abs=0.01)
        mix = speech + noise
        assert (mix.pow(2).mean().sqrt().log10() * 20).item() == pytest.approx(-20, abs=0.1)
    valid = SpeechNoiseDataset(root, "valid", 1.0, SR, 1).valid_items(2, 0)
    assert len(valid) == 2 and valid[0][1].shape[0] == 2


def test_pack_round_trip_and_training_from_pack(corpus, tmp_path):
    pack = tmp_path / "c.pack"
    summary = write_pack(corpus, pack, max_mb=1)
    assert summary["train_items"] == 4 and summary["valid_items"] == 2
    assert pack.stat().st_size < 2**20
    header, _ = read_pack_header(pack)
    assert header["meta"]["sources"] == ["sine", "noise"]
    packed = open_corpus(pack, SR)
    folder = open_corpus(corpus, SR)
    a = packed.tracks["train"][0].stems["sine"].read(0, 2 * SR, 1)
    name = Path(packed.tracks["train"][0].stems["sine"].path).parent.name
    b = next(t for t in folder.tracks["train"] if t.name == name).stems["sine"].read(0, 2 * SR, 1)
    assert np.array_equal(a, b)  # FLAC 16-bit of 16-bit PCM: lossless
    # A budget too small for one item keeps fewer tracks, never more than the budget.
    small = write_pack(corpus, tmp_path / "s.pack", max_mb=0.05, seconds_per_track=1.0)
    assert small["train_items"] < 4 and (tmp_path / "s.pack").stat().st_size < 0.05 * 2**20
    # A pack works as data.root (here resampled to 16 kHz by the reader).
    out = tmp_path / "run"
    cfg = _config(pack, out, "train.steps=3", "train.eval_every=0",
                  "model.kwargs.sample_rate=16000")
    result = Trainer(cfg, log=lambda _m: None).run()
    assert result["step"] == 3 and np.isfinite(result["valid"]["si_sdr"])


def test_denoise_training_with_speech_only_model(tmp_path):
    root = _write_denoise_corpus(tmp_path / "dn")
    out = tmp_path / "run"
    cfg = load_config(RECIPE, [f"data.root={root}", f"out_dir={out}", "train.steps=3",
                               "train.plots=false",
                               "model.kwargs.sources=[speech]", "train.eval_every=0",
                               "train.loss.name=noise_weighted_mse",
                               "data.augment.reverb_prob=1", "data.augment.eq_prob=1",
                               "data.augment.reverb_sources=[speech]"])
    result = Trainer(cfg, log=lambda _m: None).run()
    assert set(result["valid"]) >= {"si_sdr/speech", "sdr/speech", "loss"}


def test_cli_train_and_pack(corpus, tmp_path, capsys):
    from unweave.cli import main

    assert main(["train", str(RECIPE), "--print-config", "optim.lr=1e-3"]) == 0
    assert "lr: 0.001" in capsys.readouterr().out
    assert main(["train", str(RECIPE), "optim.lrr=1"]) == 1
    assert "optim.lrr: unknown key" in capsys.readouterr().err
    pack = tmp_path / "c.pack"
    assert main(["train", "pack", str(corpus), str(pack), "--max-mb", "1"]) == 0
    assert pack.is_file() and "train 4/4 items" in capsys.readouterr().out
    out = tmp_path / "run"
    code = main(["train", str(RECIPE), f"data.root={pack}", "--out", str(out), "train.steps=2",
                 "train.eval_every=0", "train.plots=false"])
    assert code == 0 and (out / "model.pt").is_file()
    assert main(["train", str(RECIPE), f"data.root={pack}", "--out", str(out), "--resume",
                 "train.steps=3", "train.eval_every=0", "train.plots=false"]) == 0
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 3
