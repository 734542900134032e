"""``unweave data check`` on small hand-made corpora with known defects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unweave.cli import main
from unweave.data.check import check_corpus, format_report

RATE = 8000


def _write(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype="PCM_16")


def _item(folder: Path, rng, length: int = 4000, channels: int = 2, scale: float = 0.2) -> dict:
    stems = {s: (scale * rng.uniform(-1, 1, (length, channels))).round(4)
             for s in ("drums", "bass", "other", "vocals")}
    for name, audio in stems.items():
        _write(folder / f"{name}.wav", audio)
    ints = [np.round(a * 32768).astype(np.int32) for a in stems.values()]  # as PCM_16 stores
    _write(folder / "mixture.wav", (sum(ints) / 32768).astype(np.float64))
    return stems


@pytest.fixture
def corpus(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, name in (("train", "a"), ("train", "b"), ("valid", "c")):
        _item(tmp_path / split / name, rng)
    (tmp_path / "dataset.json").write_text(json.dumps({
        "task": "music4", "sample_rate": RATE, "channels": 2,
        "sources": ["drums", "bass", "other", "vocals"]}))
    (tmp_path / "manifest.csv").write_text("split,item\n")
    return tmp_path


def test_clean_corpus_passes(corpus, capsys):
    report = check_corpus(corpus)
    assert report["problems"] == [] and report["items"] == 3 and report["files"] == 15
    assert main(["data", "check", str(corpus)]) == 0
    assert "OK" in capsys.readouterr().out


def kinds(report) -> set[str]:
    return {p["kind"] for p in report["problems"]}


def test_detects_sum_mismatch(corpus, capsys):
    mixture, _ = sf.read(corpus / "train/a/mixture.wav")
    _write(corpus / "train/a/mixture.wav", mixture * 0.5)
    report = check_corpus(corpus)
    assert kinds(report) == {"sum"}
    assert report["problems"][0]["path"] == "train/a"
    assert main(["data", "check", str(corpus)]) == 1
    out = capsys.readouterr().out
    assert "sum" in out and "FAILED" in out


def test_detects_length_rate_channel_and_missing(corpus):
    drums, _ = sf.read(corpus / "train/a/drums.wav")
    _write(corpus / "train/a/drums.wav", drums[:-10])
    bass, _ = sf.read(corpus / "train/b/bass.wav")
    _write(corpus / "train/b/bass.wav", bass, rate=RATE * 2)
    other, _ = sf.read(corpus / "valid/c/other.wav")
    _write(corpus / "valid/c/other.wav", other[:, 0])
    (corpus / "valid/c/vocals.wav").unlink()
    report = check_corpus(corpus)
    by_path = {(p["path"], p["kind"]) for p in report["problems"]}
    assert ("train/a", "length") in by_path
    assert ("train/b", "rate") in by_path
    assert ("valid/c", "channels") in by_path
    assert ("valid/c/vocals.wav", "missing") in by_path


def test_detects_clipping_and_silence(corpus):
    rng = np.random.default_rng(1)
    folder = corpus / "train/d"
    stems = _item(folder, rng, scale=0.2)
    loud = np.clip(stems["drums"] * 20, -1, 1)
    _write(folder / "drums.wav", loud)
    _write(folder / "bass.wav", np.zeros_like(stems["bass"]))
    ints = [np.round(sf.read(folder / f"{s}.wav")[0] * 32768).astype(np.int32)
            for s in ("drums", "bass", "other", "vocals")]
    _write(folder / "mixture.wav", np.clip(sum(ints) / 32768, -1, 32767 / 32768))
    report = check_corpus(corpus)
    assert ("train/d/drums.wav", "clipping") in {(p["path"], p["kind"]) for p in report["problems"]}
    assert {(w["path"], w["kind"]) for w in report["warnings"]} == {("train/d/bass.wav", "silent")}


def test_json_output_and_pools(tmp_path, capsys):
    rng = np.random.default_rng(2)
    _write(tmp_path / "train/speech/a.wav", 0.1 * rng.standard_normal(RATE), rate=16000)
    _write(tmp_path / "train/noise/n.wav", np.zeros(RATE), rate=16000)
    _write(tmp_path / "valid/speech/b.wav", 0.1 * rng.standard_normal((RATE, 2)), rate=16000)
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"task": "denoise", "sample_rate": 16000, "channels": 1, "sources": ["speech", "noise"]}))
    assert main(["data", "check", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {(p["path"], p["kind"]) for p in report["problems"]}
    assert found == {("train/noise/n.wav", "silent"), ("valid/speech/b.wav", "channels")}
    assert report["files"] == 3 and report["summary"] == {"silent": 1, "channels": 1}


def test_missing_folder_and_empty_corpus(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 1
    assert "folder not found" in capsys.readouterr().err
    (tmp_path / "afile").write_bytes(b"x")
    assert main(["data", "check", str(tmp_path / "afile")]) == 1
    assert "afile: not a folder" in capsys.readouterr().err
    report = check_corpus(tmp_path)
    assert kinds(report) == {"empty"}
    assert "FAILED" in format_report(report)
