"""`unweave separate` end to end, in-process, with tiny models; batch and bad-input behaviour."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from unweave.cli import main
from unweave.pretrained.catalog import load_model
from unweave.pretrained.checkpoint import save_checkpoint, sha256_file

from .conftest import write_tone

MODEL = "tiny-conv_tasnet"


def run_cli(*args: str) -> int:
    return main(["separate", "-q", *args])


def test_separates_a_file_into_every_stem(tmp_path, capsys):
    src = write_tone(tmp_path / "song.wav", seconds=1.3, sample_rate=22050)
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "out"), str(src)) == 0
    model = load_model(MODEL)
    stems = sorted(p.stem for p in (tmp_path / "out" / MODEL / "song").iterdir())
    assert stems == sorted(model.sources)
    wav, sr = sf.read(tmp_path / "out" / MODEL / "song" / f"{model.sources[0]}.wav")
    assert sr == 22050 and wav.shape == (int(1.3 * 22050), model.audio_channels)
    err = capsys.readouterr().err
    assert "UNTRAINED" in err and "1 file(s), 0 failed" in err


def test_python_m_unweave_separate_form(tmp_path):
    from unweave.separate import main as separate_main

    src = write_tone(tmp_path / "a.wav")
    assert separate_main(["-q", "-n", MODEL, "--shifts=2", "-o", str(tmp_path / "o"), str(src)]) == 0
    assert (tmp_path / "o" / MODEL / "a").is_dir()


def test_two_stems_sum_to_mixture(tmp_path):
    src = write_tone(tmp_path / "t.wav", seconds=0.8, sample_rate=44100)
    stem = load_model(MODEL).sources[-1]
    assert run_cli("-n", MODEL, "--two-stems", stem, "--float32", "--clip-mode", "none",
                   "-o", str(tmp_path / "o"), str(src)) == 0
    folder = tmp_path / "o" / MODEL / "t"
    a, _ = sf.read(folder / f"{stem}.wav")
    b, _ = sf.read(folder / f"no_{stem}.wav")
    mix, _ = sf.read(src)
    np.testing.assert_allclose(a + b, mix, atol=1e-4)
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{stem}.wav", f"no_{stem}.wav"])


def test_consistent_stems_sum_to_mixture(tmp_path):
    src = write_tone(tmp_path / "t.wav", seconds=0.5, sample_rate=44100)
    assert run_cli("-n", MODEL, "--consistent", "--float32", "--clip-mode", "none",
                   "-o", str(tmp_path / "o"), str(src)) == 0
    stems = [sf.read(p)[0] for p in sorted((tmp_path / "o" / MODEL / "t").iterdir())]
    np.testing.assert_allclose(sum(stems), sf.read(src)[0], atol=1e-4)


def test_only_requested_stems_and_template_and_flac(tmp_path):
    src = write_tone(tmp_path / "t.wav")
    first = load_model(MODEL).sources[0]
    assert run_cli("-n", MODEL, "--stems", first, "--flac", "--int24",
                   "--filename", "{stem}-{track}.{ext}", "-o", str(tmp_path / "o"), str(src)) == 0
    files = list((tmp_path / "o" / MODEL).iterdir())
    assert [f.name for f in files] == [f"{first}-t.flac"]
    assert sf.info(files[0]).subtype == "PCM_24"


def test_folder_batch_continues_after_a_bad_file(tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_tone(folder / "good.wav")
    write_tone(folder / "sub" / "good2.wav")
    (folder / "bad.wav").write_text("this is not audio")
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "o"), str(folder)) == 1
    err = capsys.readouterr().err
    assert "bad.wav" in err and "2 file(s), 1 failed" in err
    assert (tmp_path / "o" / MODEL / "good").is_dir() and (tmp_path / "o" / MODEL / "good2").is_dir()
    assert not (tmp_path / "o" / MODEL / "bad").exists()


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, capsys):
    src = write_tone(tmp_path / "t.wav")
    out = ["-n", MODEL, "-o", str(tmp_path / "o"), str(src)]
    assert run_cli(*out) == 0
    target = next((tmp_path / "o" / MODEL / "t").iterdir())
    stamp = target.stat().st_mtime_ns
    assert run_cli(*out) == 1 and "exists" in capsys.readouterr().err
    assert run_cli("--skip-existing", *out) == 0
    assert target.stat().st_mtime_ns == stamp
    assert run_cli("--overwrite", *out) == 0


@pytest.mark.parametrize("args,message", [
    (["-n", "no-such-model"], "unknown model"),
    (["--filename", "{track}.{ext}"], "must contain {stem}"),
    (["--filename", "../{stem}.{ext}"], "relative path"),
    (["--two-stems", "kazoo"], "not a source"),
    (["--device", "cuda"], "cuda"),
])
def test_bad_options_fail_clearly(tmp_path, capsys, args, message):
    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    src = write_tone(tmp_path / "t.wav")
    assert run_cli("-n", MODEL, *args, "-o", str(tmp_path / "o"), str(src)) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,message", [
    (["--overlap", "1.5"], "argument --overlap: '1.5' is not a fraction in [0, 1)"),
    (["--overlap", "nan"], "argument --overlap: 'nan' is not a fraction"),
    (["--shifts", "-1"], "argument --shifts: '-1' is not a whole number >= 0"),
    (["--segment", "0"], "argument --segment: '0' is not a positive number of seconds"),
    (["-j", "0"], "argument -j/--jobs: '0' is not a whole number > 0"),
    (["--batch-size", "two"], "argument --batch-size: 'two' is not a whole number > 0"),
])
def test_bad_numbers_are_a_usage_error_before_any_work(tmp_path, capsys, args, message):
    src = write_tone(tmp_path / "t.wav")
    with pytest.raises(SystemExit) as exit_info:
        run_cli("-n", MODEL, *args, "-o", str(tmp_path / "o"), str(src))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_file_and_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "o"), str(tmp_path / "nope.wav"),
                   str(tmp_path / "empty")) == 1
    err = capsys.readouterr().err
    assert "nope.wav: no such file" in err and "empty: folder contains no audio" in err


def test_checkpoint_with_wrong_sha256_is_refused(tmp_path, capsys):
    model = load_model(MODEL)
    ckpt = save_checkpoint(model, tmp_path / "m.pt", arch=model.arch_name)
    src = write_tone(tmp_path / "t.wav")
    url = f"{ckpt.as_uri()}#sha256={'0' * 64}"
    assert run_cli("-n", url, "-o", str(tmp_path / "o"), str(src)) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    good = f"{ckpt.as_uri()}#sha256={sha256_file(ckpt)}"
    assert run_cli("-n", good, "-o", str(tmp_path / "o"), str(src)) == 0


def test_unwritable_output_folder(tmp_path, capsys):
    src = write_tone(tmp_path / "t.wav")
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    assert run_cli("-n", MODEL, "-o", str(blocker), str(src)) == 1
    assert "file-not-folder" in capsys.readouterr().err


def test_disk_full_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    from unweave.audio import io

    src = write_tone(tmp_path / "t.wav", seconds=1.0)
    real_open = io.open_writer
    calls = {"n": 0}

    def failing_open(path, *a, **kw):
        writer = real_open(path, *a, **kw)
        calls["n"] += 1
        if calls["n"] > len(load_model(MODEL).sources):  # the final encodes, after the temps
            def boom(block):
                raise OSError(errno.ENOSPC, "No space left on device")
            writer.write = boom
        return writer

    monkeypatch.setattr(io, "open_writer", failing_open)
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "o"), str(src)) == 1
    assert "No space left" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no stems, no temp files, no empty folders


def test_file_failing_mid_stream_leaves_no_folder_but_keeps_existing_ones(tmp_path, capsys):
    x = np.full((3 * 22050, 2), 0.1, np.float32)  # longer than one decoder read
    x[-10, 1] = np.nan  # found only when the last block is decoded, after the writers opened
    sf.write(tmp_path / "late.wav", x, 22050, subtype="FLOAT")
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "o"), str(tmp_path / "late.wav")) == 1
    assert "late.wav: contains NaN" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "kept" / MODEL).mkdir(parents=True)  # the user's folders stay
    assert run_cli("-n", MODEL, "-o", str(tmp_path / "kept"), str(tmp_path / "late.wav")) == 1
    assert [p.name for p in (tmp_path / "kept").iterdir()] == [MODEL]
    assert list((tmp_path / "kept" / MODEL).iterdir()) == []


def test_clip_under_a_tenth_of_a_second_with_the_progress_bar(tmp_path, capsys):
    src = write_tone(tmp_path / "blip.wav", seconds=0.02, sample_rate=22050)
    assert main(["separate", "-n", MODEL, "-o", str(tmp_path / "o"), str(src)]) == 0
    out = tmp_path / "o" / MODEL / "blip"
    wav, sr = sf.read(out / f"{load_model(MODEL).sources[0]}.wav")
    assert sr == 22050 and wav.shape[0] == int(0.02 * 22050)
    assert "1 file(s), 0 failed" in capsys.readouterr().err


def test_models_command_lists_untrained(capsys):
    assert main(["models", "--all"]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "tiny-demucs" in out and "demucs" in out
    starred = [line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["*"]]
    assert sorted(starred) == sorted(r["name"] for r in catalog_rows() if r["default"])
    assert len(starred) == 4  # music, vocals, soundtrack, speech
    assert main(["models", "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| model | params | source | metric |")
    trained = [r for r in catalog_rows() if r["trained"]]
    for r in trained:  # every trained model's scores reach the table, untrained ones never do
        assert any(line.startswith(f"| {r['name']} |") for line in table)
    assert not any(line.startswith("| tiny-") for line in table)
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"demucs", "tasnet", "vocals", "soundtrack", "denoise", "tiny-demucs"} <= names
    assert all(r["trained"] is (r["sha256"] is not None) for r in rows)
    assert all(r["params"] > 0 for r in rows)


def test_models_into_a_closed_pipe_exits_quietly():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "unweave", "models", "--all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def catalog_rows():
    from unweave.pretrained.catalog import list_models

    return list_models(include_tiny=True)


def test_separator_api_in_memory(tone):
    from unweave import Separator

    sep = Separator(MODEL)
    stems = sep.separate_file(tone)
    wav, sr = sf.read(tone, always_2d=True)
    assert set(stems) == set(sep.sources)
    assert all(s.shape[-1] == wav.shape[0] for s in stems.values())
    again = sep.separate_tensor(torch.from_numpy(wav.T.astype(np.float32)), sr)
    torch.testing.assert_close(again[sep.sources[0]], stems[sep.sources[0]])
    as_numpy = sep.separate_tensor(wav.T, sr)  # a NumPy array (float64) works the same
    torch.testing.assert_close(as_numpy[sep.sources[0]], stems[sep.sources[0]])


def test_separator_api_refuses_bad_settings_at_construction():
    """Out-of-range chunking settings fail when the Separator is made, not at its first use."""
    from unweave import Separator

    for kwargs, message in [({"shifts": -1}, "shifts must be >= 0"),
                            ({"overlap": 1.0}, r"overlap must be in \[0, 1\)"),
                            ({"overlap": -0.1}, r"overlap must be in \[0, 1\)"),
                            ({"segment": 0}, "segment must be positive")]:
        with pytest.raises(ValueError, match=message):
            Separator(MODEL, **kwargs)


@pytest.mark.parametrize("wav, error, message", [
    (torch.zeros(1, 2, 800), ValueError, r"\(channels, time\) or \(time,\), got shape \(1, 2, 800\)"),
    (torch.zeros(800, 2), ValueError, r"shape \(800, 2\).*pass wav\.T"),
    (torch.zeros(2, 800, dtype=torch.int16), TypeError, r"float samples.*got torch\.int16"),
    (torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), ValueError, "NaN or infinite"),
    (torch.tensor([0.0, float("inf")]), ValueError, "NaN or infinite"),
])
def test_separator_api_refuses_bad_arrays(wav, error, message):
    """Arrays the API would otherwise separate into garbage (time and channels swapped, integer
    PCM at 32768 times full scale, NaN) are refused with a message saying what is wrong."""
    from unweave import Separator

    with pytest.raises(error, match=message):
        Separator(MODEL).separate_tensor(wav, 8000)


def test_rescale_keeps_loud_stems_unclipped(tmp_path):
    src = write_tone(tmp_path / "loud.wav", seconds=0.5, sample_rate=44100, amp=0.99)
    # two_stems of an identity-like split: no_STEM = mix - STEM can exceed 1 in magnitude
    from unweave.inference.separator import OutputOptions, Separator

    from .conftest import IdentityModel

    sep = Separator(IdentityModel(sample_rate=44100))  # sources a = mix, b = 2 * mix
    paths = sep.separate_to_files(src, tmp_path / "o", options=OutputOptions(subtype="FLOAT"))
    b, _ = sf.read(paths["b"])
    a, _ = sf.read(paths["a"])
    assert np.abs(b).max() <= 0.99 + 1e-6 and np.abs(b).max() > 0.9  # rescaled, not clamped
    np.testing.assert_allclose(b / np.abs(b).max(), a / np.abs(a).max(), atol=1e-4)
    clamped = sep.separate_to_files(src, tmp_path / "c", options=OutputOptions(clip="clamp", subtype="FLOAT"))
    c, _ = sf.read(clamped["b"])
    assert np.abs(c).max() <= 1.0 and np.isclose(np.abs(c).max(), 1.0)


def test_refine_flag_makes_stems_share_out_the_mixture(tmp_path):
    src = write_tone(tmp_path / "t.wav", seconds=0.7, sample_rate=44100)  # the model's rate
    assert run_cli("-n", MODEL, "--refine", "--float32", "--clip-mode", "none",
                   "-o", str(tmp_path / "o"), str(src)) == 0
    stems = [sf.read(p)[0] for p in sorted((tmp_path / "o" / MODEL / "t").iterdir())]
    assert len(stems) == len(load_model(MODEL).sources)
    np.testing.assert_allclose(sum(stems), sf.read(src)[0], atol=1e-3)
    # the mode flag: soft masks alone also share out the mixture; it contradicts --no-refine
    assert run_cli("-n", MODEL, "--refine-mode", "soft", "--float32", "--clip-mode", "none",
                   "-o", str(tmp_path / "s"), str(src)) == 0
    soft = [sf.read(p)[0] for p in sorted((tmp_path / "s" / MODEL / "t").iterdir())]
    np.testing.assert_allclose(sum(soft), sf.read(src)[0], atol=1e-3)
    assert run_cli("-n", MODEL, "--refine-mode", "soft", "--no-refine",
                   "-o", str(tmp_path / "x"), str(src)) == 1
    assert not (tmp_path / "x").exists()
