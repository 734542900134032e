"""The scripts in tools/ that change weights or measure models (tiny models, synthetic signals)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unweave.pretrained.checkpoint import load_checkpoint, save_checkpoint
from unweave.registry import build_model, build_tiny

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _tool(name: str):
    if str(TOOLS) not in sys.path:  # the tools import their shared helper (tools/growth.py)
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_mrx() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("mrx", sources=["a", "b", "c"], sample_rate=8000, audio_channels=2,
                        segment=1.0, window_ms=[16.0, 32.0], hop_ms=8.0, hidden_size=6,
                        lstm_layers=2, mask="softmax")
    with torch.no_grad():  # away from the init, so that a wrong mapping shows
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def test_widen_mrx_keeps_the_function_and_trains_the_new_units(tmp_path):
    widen = _tool("widen_mrx")
    model = _small_mrx()
    src, dst = tmp_path / "small.pt", tmp_path / "wide.pt"
    save_checkpoint(model, src, arch="mrx")
    assert widen.main([str(src), str(dst), "--hidden", "12"]) == 0
    wide = load_checkpoint(dst)
    assert wide.init_kwargs["hidden_size"] == 12
    x = 0.1 * torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model(x), wide(x)
    assert (a - b).abs().max() <= 1e-2 * a.abs().max()
    assert sum(p.numel() for p in wide.parameters()) > 1.5 * sum(p.numel() for p in model.parameters())
    # the new units' outgoing weights start at zero but get gradients: they can learn
    wide.train()
    wide(x).square().mean().backward()
    grad = wide.decoders[0][0][0].weight.grad
    assert grad[:, 6:12].abs().sum() > 0
    # never overwrites, and refuses a width that cannot keep the function
    assert widen.main([str(src), str(dst), "--hidden", "12"]) == 1
    assert widen.main([str(src), str(tmp_path / "other.pt"), "--hidden", "10"]) == 1
    assert not (tmp_path / "other.pt").exists()


def test_widen_mrx_rejects_other_architectures(tmp_path, capsys):
    widen = _tool("widen_mrx")
    model = build_tiny("conv_tasnet")
    path = tmp_path / "tasnet.pt"
    save_checkpoint(model, path, arch="conv_tasnet")
    assert widen.main([str(path), str(tmp_path / "out.pt"), "--hidden", "8"]) == 1
    assert "not mrx" in capsys.readouterr().err


def test_deepen_tasnet_keeps_the_function_and_trains_the_new_blocks(tmp_path, capsys):
    deepen = _tool("deepen_tasnet")
    torch.manual_seed(0)
    model = build_tiny("conv_tasnet", repeats=2)  # 2 blocks x 2 repeats, skip paths
    with torch.no_grad():  # away from the init, so that a wrong mapping shows
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    src, dst = tmp_path / "small.pt", tmp_path / "deep.pt"
    save_checkpoint(model, src, arch="conv_tasnet")
    assert deepen.main([str(src), str(dst), "--blocks", "3", "--repeats", "3"]) == 0
    deep = load_checkpoint(dst)
    assert (deep.init_kwargs["blocks"], deep.init_kwargs["repeats"]) == (3, 3)
    assert len(deep.tcn) == 9
    x = 0.1 * torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model.eval()(x), deep(x)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    # old block (repeat r, block x) sits at r * 3 + x; the others start silent but learn
    for old_index, new_index in ((0, 0), (1, 1), (2, 3), (3, 4)):
        assert torch.equal(deep.tcn[new_index].depthwise.weight,
                           model.tcn[old_index].depthwise.weight)
    deep.train()
    deep(x).square().mean().backward()
    for index in (2, 5, 6, 7, 8):
        assert deep.tcn[index].skip.weight.grad.abs().sum() > 0
    # after one step the signal reaches through them: the old last block's new residual and
    # the new blocks' inner layers learn too
    torch.optim.SGD(deep.parameters(), lr=0.1).step()
    deep.zero_grad()
    deep(x).square().mean().backward()
    assert deep.tcn[4].residual.weight.grad.abs().sum() > 0
    assert deep.tcn[5].inner[0].weight.grad.abs().sum() > 0
    # never overwrites; refuses to shrink or to keep the same size
    assert deepen.main([str(src), str(dst), "--blocks", "3"]) == 1
    assert deepen.main([str(src), str(tmp_path / "same.pt"), "--blocks", "2"]) == 1
    assert deepen.main([str(src), str(tmp_path / "less.pt"), "--blocks", "3", "--repeats", "1"]) == 1
    assert not (tmp_path / "same.pt").exists() and not (tmp_path / "less.pt").exists()
    assert "cannot shrink" in capsys.readouterr().err
    # a file that is not a checkpoint: a clear error naming it, no traceback
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert deepen.main([str(bad), str(tmp_path / "x.pt"), "--blocks", "3"]) == 1
    assert "bad.pt" in capsys.readouterr().err


def test_widen_unet_keeps_the_function_and_lets_the_copies_drift_apart(tmp_path, capsys):
    widen = _tool("widen_unet")
    torch.manual_seed(0)
    model = build_model("spec_unet", sources=["a", "b", "c"], sample_rate=8000,
                        audio_channels=2, segment=1.0, n_fft=256, hop_length=64, depth=3,
                        channels=4, mask="softmax")
    with torch.no_grad():  # away from the init (statistics too), so that a wrong mapping shows
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.2 * torch.randn_like(buf))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand_like(buf))
    src, dst = tmp_path / "unet.pt", tmp_path / "wide.pt"
    save_checkpoint(model, src, arch="spec_unet")
    assert widen.main([str(src), str(dst)]) == 0
    wide = load_checkpoint(dst)
    assert wide.init_kwargs["channels"] == 8
    n_old = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in wide.parameters()) > 3 * n_old
    x = 0.1 * torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model.eval()(x), wide.eval()(x)
    assert (a - b).abs().max() <= 1e-2 * a.abs().max()
    # a copy's filters get other gradients than its original's: the pair can drift apart
    wide.train()
    wide(x).square().mean().backward()
    grad = wide.down[1].net[0].weight.grad  # (16, 8, k, k): maps 0-7 originals, 8-15 copies
    assert (grad[:8] - grad[8:]).abs().max() > 1e-3 * grad.abs().max()
    # never overwrites; other architectures and dense blocks are refused
    assert widen.main([str(src), str(dst)]) == 1
    tasnet = tmp_path / "tasnet.pt"
    save_checkpoint(build_tiny("conv_tasnet"), tasnet, arch="conv_tasnet")
    assert widen.main([str(tasnet), str(tmp_path / "x.pt")]) == 1
    assert "not spec_unet" in capsys.readouterr().err
    dense = build_model("spec_unet", sample_rate=8000, segment=1.0, n_fft=256, hop_length=64,
                        depth=2, channels=4, dense=True)
    save_checkpoint(dense, tmp_path / "dense.pt", arch="spec_unet")
    assert widen.main([str(tmp_path / "dense.pt"), str(tmp_path / "x.pt")]) == 1
    assert "dense" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_retarget_unet_starts_each_new_source_as_the_old_one_it_names(tmp_path, capsys):
    retarget = _tool("retarget_unet")
    torch.manual_seed(0)
    model = build_model("spec_unet", sources=["vocals", "accompaniment"], sample_rate=8000,
                        audio_channels=2, segment=1.0, n_fft=256, hop_length=64, depth=2,
                        channels=4)
    with torch.no_grad():  # away from the init, so that a wrong mapping shows
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    src, dst = tmp_path / "vocals.pt", tmp_path / "st.pt"
    save_checkpoint(model, src, arch="spec_unet")
    args = [str(src), str(dst), "--sources", "speech=vocals", "music=accompaniment",
            "sfx=accompaniment"]
    assert retarget.main(args) == 0
    new = load_checkpoint(dst)
    assert tuple(new.sources) == ("speech", "music", "sfx")
    x = 0.1 * torch.randn(1, 2, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model.eval()(x), new(x)
    assert b.shape == (1, 3, 2, 8000)
    for i, j in ((0, 0), (1, 1), (2, 1)):
        assert torch.allclose(b[:, i], a[:, j], atol=1e-6)
    # never overwrites; an unknown old source, a malformed pair or softmax masks are refused
    assert retarget.main(args) == 1
    assert retarget.main([str(src), str(tmp_path / "x.pt"), "--sources", "speech=drums"]) == 1
    assert "no source 'drums'" in capsys.readouterr().err
    assert retarget.main([str(src), str(tmp_path / "x.pt"), "--sources", "speech"]) == 1
    soft = build_model("spec_unet", sources=["a", "b"], sample_rate=8000, audio_channels=1,
                       segment=1.0, n_fft=256, hop_length=64, depth=2, channels=4,
                       mask="softmax")
    save_checkpoint(soft, tmp_path / "soft.pt", arch="spec_unet")
    assert retarget.main([str(tmp_path / "soft.pt"), str(tmp_path / "x.pt"),
                          "--sources", "a=a", "c=b"]) == 1
    assert "softmax" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_release_continued_keeps_the_shipped_license_hardware_and_data_note() -> None:
    import argparse
    import json

    from unweave.pretrained.catalog import CATALOG_PATH

    release = _tool("release")
    shipped = next(e for e in json.loads(CATALOG_PATH.read_text())["models"]
                   if e["name"] == "soundtrack")
    args = argparse.Namespace(license=None, hardware=None, data_note=None)
    release._keep_from_entry(args, shipped)
    assert args.license == shipped["license"] and args.license
    assert args.hardware == shipped["training"]["hardware"]
    # the kept note, appended after the split sentence again, rebuilds the shipped text's tail
    split = release._split_sentence("soundtrack")
    assert shipped["data"].endswith(f"{split} {args.data_note}".rstrip())
    # what is given on the command line wins
    given = argparse.Namespace(license="MIT", hardware="GPU", data_note="new note")
    release._keep_from_entry(given, shipped)
    assert (given.license, given.hardware, given.data_note) == ("MIT", "GPU", "new note")
    # an entry without a split sentence keeps no note
    bare = argparse.Namespace(license=None, hardware=None, data_note=None)
    release._keep_from_entry(bare, {"license": "X", "data": "no sentence here"})
    assert bare.data_note is None and bare.license == "X" and bare.hardware is None


def test_release_records_a_chunk_overlap_only_when_the_scores_used_their_own() -> None:
    release = _tool("release")
    assert release._inference({"settings": {"refine": "spatial", "overlap": 0.25}}) == {
        "refine": "spatial"}
    assert release._inference({"settings": {"refine": "spatial", "overlap": 0.1}}) == {
        "refine": "spatial", "overlap": 0.1}
    assert release._inference({"settings": {"refine": True}}) == {"refine": "soft"}
    # new scores at the default overlap drop an entry's earlier one
    entry = {"name": "m", "refine": "soft", "overlap": 0.1}
    release._set_inference(entry, {"settings": {"refine": "spatial", "overlap": 0.25}})
    assert entry == {"name": "m", "refine": "spatial"}


def test_release_writes_a_new_bag_entry(tmp_path, monkeypatch) -> None:
    release = _tool("release")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"format_version": 1, "defaults": {}, "models": [
        {"name": "a", "task": "soundtrack"}, {"name": "b", "task": "soundtrack"}]}))
    chosen = tmp_path / "weights.json"
    chosen.write_text(json.dumps({"members": ["a", "b"], "weights": [[1.0, 2.0], [0.5, 0.0]],
                                  "spatial": True}))
    monkeypatch.setattr(release, "CATALOG_PATH", catalog)
    monkeypatch.setattr(sys, "argv", [
        "release.py", "ab", "--bag-weights", str(chosen), "--task", "soundtrack",
        "--description", "a and b", "--data-note", "its members'", "--license", "MIT"])
    release.main()
    entry = json.loads(catalog.read_text())["models"][-1]
    assert entry == {"name": "ab", "task": "soundtrack", "description": "a and b",
                     "bag": {"models": ["a", "b"], "weights": [[1.0, 2.0], [0.5, 0.0]]},
                     "refine": "spatial", "data": "its members'", "license": "MIT"}
    # --bag-weights on an existing single model is refused
    monkeypatch.setattr(sys, "argv", ["release.py", "a", "--bag-weights", str(chosen)])
    with pytest.raises(SystemExit):
        release.main()


def test_bag_weights_caches_estimates_per_weights_not_per_name(tmp_path) -> None:
    bag_weights = _tool("bag_weights")
    from unweave.inference.separator import Separator

    sep = Separator("tiny-spec_unet", refine=False, jobs=1)
    mix = {"a": torch.randn(sep.model.audio_channels, sep.sample_rate // 2)}
    sources, first = bag_weights.member_estimates("m", sep, mix, tmp_path)
    assert first["a"].shape[0] == len(sources)
    before = bag_weights.weights_fingerprint(sep.model)
    with torch.no_grad():  # the same name, retrained: its estimates are not reused
        next(sep.model.parameters()).add_(1.0)
    assert bag_weights.weights_fingerprint(sep.model) != before
    bag_weights.member_estimates("m", sep, mix, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"m-{before}", f"m-{bag_weights.weights_fingerprint(sep.model)}"])


def test_compare_reports_splits_chosen_and_held_out_items(tmp_path, capsys) -> None:
    compare = _tool("compare_reports")
    rows = ["split,item,stem,path"] + [f"valid,it{i},{s},x/{i}/{s}.wav"
                                       for i in range(4) for s in ("a", "b")]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")

    def report(name: str, values: list[float]) -> Path:
        for i, v in enumerate(values):
            scores = {s: {"si_sdr": {"estimate": v, "oracle_irm": 10.0}} for s in ("a", "b")}
            (tmp_path / name / "items").mkdir(parents=True, exist_ok=True)
            (tmp_path / name / "items" / f"it{i}.json").write_text(json.dumps({"scores": scores}))
        return tmp_path / name

    old, new = report("old", [1.0, 2.0, 3.0, 4.0]), report("new", [2.0, 1.0, 5.0, 6.0])
    out = tmp_path / "cmp.txt"
    assert compare.main([str(tmp_path), f"old={old}", f"new={new}", "--first", "2",
                         "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == text
    groups = text.split("first 2 (chosen on)")
    # all four: medians 2.5 and 3.5 of an oracle of 10; new better on 3 of 4 (mean +1)
    assert "old 2.50 (25%), new 3.50 (35%); oracle 10.00" in groups[0]
    assert "new vs old: better on 3/4 items, mean +1.00 dB" in groups[0]
    chosen, held = groups[1].split("the other 2 (held out)")
    assert "old 1.50 (15%), new 1.50 (15%)" in chosen and "better on 1/2 items" in chosen
    assert "old 3.50 (35%), new 5.50 (55%)" in held and "better on 2/2 items, mean +2.00" in held
    with pytest.raises(SystemExit, match="no items/ folder"):
        compare.main([str(tmp_path), f"old={tmp_path / 'missing'}"])
    if importlib.util.find_spec("matplotlib"):
        png = tmp_path / "plots" / "cmp.png"
        assert compare.main([str(tmp_path), f"old={old}", f"new={new}", "--plot", str(png)]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [p.name for p in png.parent.iterdir()] == ["cmp.png"]  # no temporary file left


def test_bag_weights_joint_objective_refuses_a_weight_that_costs_another_stem() -> None:
    bag_weights = _tool("bag_weights")
    sources, members = ["a", "b"], ["m", "n"]

    def score(w):  # raising m's weight for a lifts a by 1 dB and costs b 2 dB (a shared filter)
        lift = float(w[0, 0]) - 1.0
        return bag_weights.summarise({"a": [1.0 + lift, 3.0 + lift], "b": [5.0 - 2 * lift] * 2})

    start, tunable = np.ones((2, 2)), np.array([[True, False], [False, False]])
    kept, trials = bag_weights.coordinate_descent(
        start, tunable, [1.0, 2.0], score, bag_weights.objective("stem", sources),
        sources, members)
    assert kept[0, 0] == 2.0 and [t[0] for t in trials] == ["start", "a:m=2.0"]
    assert trials[1][2]["median"] == {"a": 3.0, "b": 3.0}
    for joint in ("joint", "joint-mean"):
        kept, _ = bag_weights.coordinate_descent(
            start, tunable, [1.0, 2.0], score, bag_weights.objective(joint, sources),
            sources, members)
        assert kept[0, 0] == 1.0
    # a trial that would leave a source with no weight at all is skipped
    kept, trials = bag_weights.coordinate_descent(
        np.array([[1.0, 1.0], [0.0, 1.0]]), tunable, [0.0], score,
        bag_weights.objective("stem", sources), sources, members)
    assert len(trials) == 1 and kept[0, 0] == 1.0


def test_band_balance_finds_a_stem_left_half_level_in_its_band(tmp_path, capsys) -> None:
    balance = _tool("band_balance")
    rate, t = 8000, torch.arange(16000) / 8000
    bass = 0.3 * torch.sin(2 * torch.pi * 80 * t)  # 60-120 Hz band
    other = 0.1 * torch.sin(2 * torch.pi * 1500 * t)  # 1-4 kHz band
    refs = torch.stack([bass, other])[:, None].repeat(1, 2, 1)  # (S, C, T)
    est = refs.clone()
    est[0] *= 0.5  # the bass comes out 6 dB low; its missing half went to "other"
    est[1] += 0.5 * refs[0]
    row = balance.item_balance(est, refs, rate)
    assert row["level"].shape == (2, len(balance.EDGES) - 1)
    assert row["level"][0, 1] == pytest.approx(-6.02, abs=0.05)
    assert row["band_sdr"][0, 1] == pytest.approx(6.02, abs=0.05)  # error: half the amplitude
    assert row["level"][1, 5] == pytest.approx(0.0, abs=0.05)  # other's own band untouched
    assert row["level"][1, 1] > 40  # ... but it holds energy where its reference has none
    # medians skip the items where a stem is absent
    rows = [{"level": row["level"], "present": [True, True]},
            {"level": row["level"] + 10, "present": [False, True]}]
    table = balance.medians(rows, "level", 2, len(balance.EDGES) - 1)
    assert table[0, 1] == pytest.approx(row["level"][0, 1])
    assert table[1, 5] == pytest.approx(5.0, abs=0.05)
    # the whole script on a folder dataset with a tiny checkpoint writes its table and plot
    import soundfile as sf
    torch.manual_seed(0)
    model = build_tiny("spec_unet", sources=["bass", "other"], sample_rate=rate, audio_channels=2)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(model, ckpt, arch="spec_unet")
    song = tmp_path / "songs" / "valid" / "song1"
    song.mkdir(parents=True)
    for name, audio in (("bass", refs[0]), ("other", refs[1]), ("mixture", refs.sum(0))):
        sf.write(song / f"{name}.wav", audio.T.numpy(), rate)
    out, png = tmp_path / "balance.json", tmp_path / "balance.png"
    assert balance.main([str(ckpt), str(tmp_path / "songs"), "--seconds", "1",
                         "--refine-mode", "soft", "--out", str(out), "--plot", str(png)]) == 0
    assert "band_sdr" in capsys.readouterr().out
    assert balance.main([str(ckpt), str(tmp_path / "nowhere")]) == 1  # a clear error, no trace
    assert "nowhere: dataset not found" in capsys.readouterr().err
    payload = json.loads(out.read_text())
    assert payload["sources"] == ["bass", "other"] and len(payload["items"]) == 1
    assert np.isfinite(payload["medians"]["band_sdr"][0][1])
    assert png.stat().st_size > 1000
