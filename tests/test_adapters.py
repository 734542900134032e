"""Dataset adapters: MUSDB18(-HQ), DnR, unweave corpora, speech+noise folders, CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unweave.data import adapters
from unweave.errors import UnweaveError


def _touch(path: Path, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(80), rate)
    return path


def test_musdb_items_with_and_without_split(tmp_path):
    for split, track in (("train", "A - Song"), ("train", "B - Tune"), ("test", "C - Air")):
        for stem in ("mixture", "drums", "bass", "other", "vocals"):
            _touch(tmp_path / split / track / f"{stem}.wav")
    items = adapters.musdb_items(tmp_path, "train")
    assert [i["name"] for i in items] == ["A - Song", "B - Tune"]
    assert set(items[0]["stems"]) == {"drums", "bass", "other", "vocals"}
    assert items[0]["mixture"].name == "mixture.wav"
    assert adapters.musdb_items(tmp_path / "test")[0]["name"] == "C - Air"
    (tmp_path / "train/B - Tune/bass.wav").unlink()
    with pytest.raises(UnweaveError, match="lacks stems bass"):
        adapters.musdb_items(tmp_path, "train")
    with pytest.raises(UnweaveError, match="no 'valid' split"):
        adapters.musdb_items(tmp_path, "valid")


def test_dnr_items_v2_and_v3_names(tmp_path):
    for stem in ("mix", "speech", "music", "sfx"):
        _touch(tmp_path / "tr" / "1001" / f"{stem}.wav")
    for stem in ("mix", "dialog", "music", "effects"):
        _touch(tmp_path / "cv" / "2002" / f"{stem}.wav")
    train = adapters.dnr_items(tmp_path, "train")
    assert train[0]["name"] == "1001" and train[0]["mixture"].name == "mix.wav"
    assert set(train[0]["stems"]) == {"speech", "music", "sfx"}
    valid = adapters.dnr_items(tmp_path, "cv")
    assert valid[0]["stems"]["speech"].name == "dialog.wav"
    assert valid[0]["stems"]["sfx"].name == "effects.wav"


def test_corpus_items_reads_dataset_json(tmp_path):
    for stem in ("vocals", "accompaniment", "mixture"):
        _touch(tmp_path / "valid" / "song_v0" / f"{stem}.wav")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"task": "vocals", "sources": ["vocals", "accompaniment"]}))
    items = adapters.corpus_items(tmp_path, "valid")
    assert items == [{"name": "song_v0",
                      "stems": {"vocals": tmp_path / "valid/song_v0/vocals.wav",
                                "accompaniment": tmp_path / "valid/song_v0/accompaniment.wav"},
                      "mixture": tmp_path / "valid/song_v0/mixture.wav"}]


def test_speech_noise_items(tmp_path):
    _touch(tmp_path / "clean/spk1/a.flac")
    _touch(tmp_path / "clean/b.wav")
    _touch(tmp_path / "noise/rain.wav")
    (tmp_path / "noise/notes.txt").write_text("x")
    items = adapters.speech_noise_items(tmp_path / "clean", tmp_path / "noise")
    assert [(i["name"], list(i["stems"])) for i in items] == [
        ("speech/b", ["speech"]), ("speech/spk1/a", ["speech"]), ("noise/rain", ["noise"])]
    assert all(i["mixture"] is None for i in items)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnweaveError, match="no audio files for the noise pool"):
        adapters.speech_noise_items(tmp_path / "clean", tmp_path / "empty")


def test_csv_items(tmp_path):
    for name in ("v1", "a1", "m1", "v2", "a2"):
        _touch(tmp_path / "audio" / f"{name}.wav")
    table = tmp_path / "list.csv"
    table.write_text("name,vocals,accompaniment,mixture\n"
                     "one,audio/v1.wav,audio/a1.wav,audio/m1.wav\n"
                     f",{tmp_path}/audio/v2.wav,audio/a2.wav,\n")
    items = adapters.csv_items(table)
    assert items[0]["name"] == "one" and items[0]["mixture"] == tmp_path / "audio/m1.wav"
    assert items[1]["name"] == "row00002" and items[1]["mixture"] is None
    assert items[1]["stems"]["vocals"] == tmp_path / "audio/v2.wav"
    table.write_text("vocals\naudio/missing.wav\n")
    with pytest.raises(UnweaveError, match="line 2, column vocals"):
        adapters.csv_items(table)
