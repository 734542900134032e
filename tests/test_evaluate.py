"""``unweave evaluate``: dataset discovery, scoring against the mixture and the IRM oracle,
reports (JSON, Markdown, plots) and the CLI, on tiny synthetic datasets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.errors import UnweaveError
from unweave.evaluate import evaluate, find_items, oracle_irm, silent_sources
from unweave.metrics import report, snr
from unweave.models.base import SeparationModel

SR = 8000


class BandSplit(SeparationModel):
    """Stand-in separator: "low" = the mixture below ``cutoff`` Hz (FFT brick wall), "high" =
    the rest.

    Near-perfect on the synthetic tracks below, whose sources live in disjoint bands.
    """

    def __init__(self, cutoff: float = 1000.0, sources=("low", "high")):
        super().__init__(sources=sources, sample_rate=SR, audio_channels=2, segment=None)
        self.cutoff = cutoff

    def forward(self, mix: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, 2, C, T)
        spec = torch.fft.rfft(mix, dim=-1)
        freqs = torch.fft.rfftfreq(mix.shape[-1], 1 / self.sample_rate)
        low = torch.fft.irfft(spec * (freqs < self.cutoff), n=mix.shape[-1], dim=-1)
        return torch.stack([low, mix - low], dim=1)


def make_stems(seed: int, seconds: float = 1.5, channels: int = 2) -> dict[str, np.ndarray]:
    """Two sources in disjoint bands: tones under 1 kHz ("low"), 2-3 kHz ("high"). (T, C) each."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    pan = np.linspace(1.0, 0.6, channels)
    low = sum(0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (180 + 40 * seed, 470))
    high = 0.25 * np.sin(2 * np.pi * (2300 + 100 * seed) * t) * (1 + 0.5 * np.sin(6 * np.pi * t))
    return {"low": low[:, None] * pan, "high": high[:, None] * pan[::-1]}


def write_track(folder, stems, *, mixture=False, fmt="wav"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, wav in stems.items():
        sf.write(str(folder / f"{name}.{fmt}"), wav, SR)
    if mixture:
        sf.write(str(folder / f"mixture.{fmt}"), sum(stems.values()), SR)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    write_track(root / "song a", make_stems(0), mixture=True)
    write_track(root / "song b", make_stems(1), fmt="flac")  # no mixture: sum of stems
    return root


def test_evaluate_writes_items_summary_and_plots(dataset, tmp_path):
    out = tmp_path / "out"
    metrics = ("sdr", "si_sdr", "mdx_sdr")
    summary = evaluate(BandSplit(), dataset, out_dir=out, metrics=metrics, spectrogram_items=1,
                       progress=False)
    for name in ("song a", "song b"):
        record = json.loads((out / "items" / f"{name}.json").read_text())
        assert record["track"] == name and record["sample_rate"] == SR
        assert set(record["scores"]) == {"low", "high"}
        assert len(record["sdr_frames"]["low"]) == 1  # 1.5 s: one full 1 s frame
        for per_metric in record["scores"].values():
            for row in per_metric.values():
                assert set(row) == {"estimate", "mixture", "oracle_irm", "improvement"}
                assert all(math.isfinite(v) for v in row.values())
                assert row["improvement"] == pytest.approx(row["estimate"] - row["mixture"])
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["items"] == 2 and saved["metrics"] == list(metrics)
    assert "museval v4 framewise median, 1 s frames" in saved["sdr_definition"]
    for source in ("low", "high"):
        sdr = saved["stems"][source]["sdr"]
        assert sdr["estimate"]["median"] > 30  # the band split is near-perfect here
        assert sdr["oracle_irm"]["median"] > sdr["mixture"]["median"] + 15
        assert sdr["improvement"]["n"] == 2 and sdr["ratio_to_oracle"] > 0
    md = (out / "summary.md").read_text()
    assert "| source | estimate | mixture | improvement | IRM oracle | est/oracle |" in md
    assert "museval v4 framewise median" in md
    assert (out / "plots" / "sdr.png").stat().st_size > 1000
    assert (out / "plots" / "spectrograms" / "song a.png").is_file()
    assert not (out / "plots" / "spectrograms" / "song b.png").exists()
    assert not list(out.rglob(".*"))  # no temp files left behind


def test_split_folder_mono_stems_and_a_derived_source(tmp_path):
    root = tmp_path / "corpus"
    stems = make_stems(2, channels=1)
    write_track(root / "valid" / "t1", {"low": stems["low"]})  # "high" missing...
    sf.write(str(root / "valid" / "t1" / "mixture.wav"), stems["low"] + stems["high"], SR)
    write_track(root / "train" / "t9", make_stems(3))  # never scored
    out = tmp_path / "out"
    summary = evaluate(BandSplit(), root, out_dir=out, metrics=("snr",), oracle=False, plots=False,
                       progress=False)
    assert json.loads((out / "items" / "t1.json").read_text())["derived_sources"] == ["high"]
    assert not (out / "plots").exists()
    assert summary["dataset"].endswith("valid") and summary["items"] == 1
    assert summary["conditions"] == ["estimate", "mixture"]
    # ... derived as mixture - low, so the band split still scores well on it
    assert summary["stems"]["high"]["snr"]["estimate"]["median"] > 30
    items, _ = find_items(root, split="train")
    assert [i.name for i in items] == ["t9"]


def test_manifest_csv(tmp_path):
    for k in range(3):
        for name, wav in make_stems(k).items():
            sf.write(str(tmp_path / f"{name}{k}.wav"), wav, SR)
    rows = ["track,split,low,high"] + [f"x{k},{'test' if k else 'train'},low{k}.wav,high{k}.wav"
                                       for k in range(3)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    items, source = find_items(tmp_path, split="test")
    assert [i.name for i in items] == ["x1", "x2"] and source.endswith("manifest.csv")
    summary = evaluate(BandSplit(), tmp_path / "manifest.csv", split="test", metrics=("sdr",),
                       plots=False, progress=False)
    assert summary["items"] == 2


def test_oracle_irm_reconstructs_disjoint_sources():
    stems = make_stems(0)
    refs = torch.from_numpy(np.stack([stems["low"].T, stems["high"].T])).float()  # (S, C, T)
    mix = refs.sum(0)
    est = oracle_irm(mix, refs, SR)
    assert est.shape == refs.shape
    assert torch.all(snr(refs, est, dim=(-2, -1)) > 20)
    # a single source equal to the mixture: the mask is 1 and the mixture comes back
    np.testing.assert_allclose(oracle_irm(mix, mix[None], SR)[0], mix, atol=1e-5)


def test_summary_skips_undefined_scores():
    rows = [{"scores": {"a": {"sdr": {"estimate": e, "mixture": 0.0, "improvement": e}}}}
            for e in (1.0, None, 3.0)]
    out = report.summarize(rows, ["a"], ["sdr"], ["estimate", "mixture"])
    assert out["stems"]["a"]["sdr"]["estimate"] == {"median": 2.0, "mean": 2.0, "n": 2}
    assert out["stems"]["a"]["sdr"]["ratio_to_oracle"] is None
    assert out["overall"]["sdr"]["estimate"] == 2.0


def test_user_errors_are_one_line(tmp_path, dataset):
    with pytest.raises(UnweaveError, match="nope: dataset not found"):
        evaluate(BandSplit(), tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnweaveError, match="empty: no tracks found"):
        evaluate(BandSplit(), tmp_path / "empty", progress=False)
    with pytest.raises(UnweaveError, match=r"song a: no stem for source\(s\) drums, bass"):
        evaluate(BandSplit(sources=("drums", "bass")), dataset, plots=False, progress=False)
    with pytest.raises(UnweaveError, match="unknown metric"):
        evaluate(BandSplit(), dataset, metrics=("sdr", "loudness"), progress=False)
    with pytest.raises(UnweaveError, match="split folder not found"):
        evaluate(BandSplit(), dataset, split="test", progress=False)


def test_cli_in_process(tmp_path, capsys):
    from unweave.cli import main

    root = tmp_path / "ds"
    for k in range(2):
        stems = make_stems(k, seconds=1.0)
        write_track(root / f"t{k}", {"vocals": stems["high"], "accompaniment": stems["low"]})
    out = tmp_path / "eval"
    code = main(["evaluate", "tiny-spec_unet", str(root), "--out", str(out), "--metrics",
                 "sdr,snr", "--no-plots", "-q"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "tiny-spec_unet" and summary["items"] == 2
    assert set(summary["stems"]) == {"vocals", "accompaniment"}
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["evaluate", "tiny-spec_unet", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing: dataset not found" in err and "\n" not in err


def test_corpus_manifest_one_row_per_stem(tmp_path):
    """The `unweave data build` manifest (split,item,stem,path,...) groups rows into tracks."""
    rows = ["split,item,stem,path,duration,sha256"]
    for k in range(2):
        split = "valid" if k else "train"
        folder = tmp_path / split / f"song{k}"
        folder.mkdir(parents=True)
        stems = make_stems(k)
        for name, wav in stems.items():
            sf.write(str(folder / f"{name}.wav"), wav, SR)
            rows.append(f"{split},song{k},{name},{split}/song{k}/{name}.wav,1.0,x")
        sf.write(str(folder / "mixture.wav"), sum(stems.values()), SR)
        rows.append(f"{split},song{k},mixture,{split}/song{k}/mixture.wav,1.0,x")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    items, source = find_items(tmp_path, split="valid")
    assert [i.name for i in items] == ["song1"] and source.endswith("manifest.csv")
    assert set(items[0].stems) == {"low", "high"}
    assert items[0].mixture == tmp_path / "valid" / "song1" / "mixture.wav"
    summary = evaluate(BandSplit(), tmp_path, split="valid", metrics=("sdr",), plots=False,
                       progress=False)
    assert summary["items"] == 1


def test_silent_sources_threshold_numpy_and_torch():
    """-80 dBFS mean square is the line between an absent and a present source, for either array
    type (the tools pass torch tensors, evaluate NumPy arrays)."""
    refs = np.zeros((3, 2, 1000))
    refs[1] = 10 ** (-79 / 20)  # just above the line: present
    refs[2] = 10 ** (-81 / 20)  # just below: absent
    assert silent_sources(refs) == [True, False, True]
    assert silent_sources(torch.from_numpy(refs).float()) == [True, False, True]


def test_silent_reference_is_left_out(tmp_path):
    """A source absent from an item (all-zero stem) gets no score instead of a meaningless one."""
    data = tmp_path / "data"
    for k in range(2):
        folder = data / f"t{k}"
        folder.mkdir(parents=True)
        stems = make_stems(k)
        if k == 1:
            stems["high"] = np.zeros_like(stems["high"])
        for name, wav in stems.items():
            sf.write(str(folder / f"{name}.wav"), wav, SR)
    out = tmp_path / "report"
    summary = evaluate(BandSplit(), data, out_dir=out, metrics=("sdr", "si_sdr"), plots=False,
                       progress=False)
    assert summary["items"] == 2
    assert summary["stems"]["high"]["si_sdr"]["estimate"]["n"] == 1
    assert summary["stems"]["low"]["si_sdr"]["estimate"]["n"] == 2
    assert "| high (1 of 2) |" in (out / "summary.md").read_text()


def test_manifest_default_split_and_unknown_split(tmp_path):
    """Without --split a manifest gives its test rows, else its valid rows, never its training
    rows; a split it does not have is an error naming the file and the splits it has."""
    rows = ["track,split,low,high"]
    for k, split in enumerate(("train", "valid", "valid")):
        for name, wav in make_stems(k).items():
            sf.write(str(tmp_path / f"{name}{k}.wav"), wav, SR)
        rows.append(f"x{k},{split},low{k}.wav,high{k}.wav")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    items, _ = find_items(tmp_path)
    assert [i.name for i in items] == ["x1", "x2"] and {i.split for i in items} == {"valid"}
    summary = evaluate(BandSplit(), tmp_path, metrics=("snr",), oracle=False, plots=False,
                       progress=False)
    assert summary["items"] == 2 and summary["split"] == "valid"
    with pytest.raises(UnweaveError, match=r"manifest\.csv: no rows with split 'test' "
                                           r"\(splits in the manifest: train, valid\)"):
        find_items(tmp_path, split="test")
    # a manifest with neither test nor valid rows is read whole
    (tmp_path / "manifest.csv").write_text("\n".join(rows[:2]) + "\n")
    assert [i.name for i in find_items(tmp_path)[0]] == ["x0"]
