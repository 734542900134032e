"""The maintenance scripts in tools/ that change weights (run on tiny models)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from unweave.pretrained.checkpoint import load_checkpoint, save_checkpoint
from unweave.registry import build_model, build_tiny

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _tool(name: str):
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
