"""Contract tests for every registered architecture (tiny configs) plus per-model checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unweave.dsp.stft import stft
from unweave.pretrained.checkpoint import load_checkpoint, save_checkpoint
from unweave.registry import build_model, build_tiny, get_arch, list_architectures

ARCHS = list_architectures()
LENGTHS = (1, 1000, 4097)


def _tiny(arch: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_tiny(arch, **overrides)


def _mix(model: nn.Module, length: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, model.audio_channels, length, generator=gen)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_names():
    assert set(ARCHS) >= {"demucs", "conv_tasnet", "spec_unet", "mrx"}
    assert get_arch("demucs").task == "music"
    assert get_arch("conv_tasnet").task == "music"
    assert get_arch("spec_unet").task == "vocals"
    assert get_arch("mrx").task == "soundtrack"


# ---------------------------------------------------------------- contract, every architecture


@pytest.mark.parametrize("arch", ARCHS)
def test_metadata(arch):
    model = _tiny(arch)
    assert isinstance(model.sources, tuple) and all(isinstance(s, str) for s in model.sources)
    assert isinstance(model.sample_rate, int) and model.sample_rate > 0
    assert model.audio_channels >= 1
    assert model.segment is not None and model.segment > 0
    for n in (1, 7, 1000, 4097, 44100):
        valid = model.valid_length(n)
        assert isinstance(valid, int) and valid >= n
        assert model.valid_length(valid) == valid


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("length", LENGTHS)
def test_forward_shape_any_length(arch, length):
    model = _tiny(arch).eval()
    with torch.no_grad():
        out = model(_mix(model, length))
    assert out.shape == (2, len(model.sources), model.audio_channels, length)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_is_deterministic(arch):
    model = _tiny(arch).eval()
    mix = _mix(model, 1000)
    with torch.no_grad():
        assert torch.equal(model(mix), model(mix))


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_items_are_independent(arch):
    model = _tiny(arch).eval()
    mix = _mix(model, 1000, batch=3)
    with torch.no_grad():
        full = model(mix)
        single = model(mix[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_parameter(arch):
    model = _tiny(arch).train()
    out = model(_mix(model, 4097))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
    for name, param in model.named_parameters():
        assert torch.isfinite(param.grad).all(), name
    nonzero = sum(bool(p.grad.abs().sum() > 0) for p in model.parameters())
    assert nonzero == len(list(model.parameters()))


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip(arch, tmp_path):
    model = _tiny(arch).eval()
    path = save_checkpoint(model, tmp_path / f"{arch}.pt", arch=arch, meta={"note": "test"})
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.init_kwargs == model.init_kwargs
    assert loaded.sources == model.sources
    mix = _mix(model, 1000)
    with torch.no_grad():
        assert torch.equal(loaded(mix), model(mix))


@pytest.mark.parametrize("arch", ARCHS)
def test_init_kwargs_round_trip(arch):
    model = _tiny(arch)
    assert model.init_kwargs == get_arch(arch).tiny
    rebuilt = build_model(arch, **model.init_kwargs)
    assert rebuilt.init_kwargs == model.init_kwargs
    assert rebuilt.arch_name == model.arch_name == arch
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("arch", ARCHS)
def test_constructor_is_keyword_only(arch):
    with pytest.raises(TypeError):
        get_arch(arch).cls(("a", "b"))


@pytest.mark.parametrize("arch", ARCHS)
def test_custom_sources_and_mono(arch):
    model = _tiny(arch, sources=("x", "y", "z"), audio_channels=1).eval()
    with torch.no_grad():
        out = model(_mix(model, 1000))
    assert model.sources == ("x", "y", "z")
    assert out.shape == (2, 3, 1, 1000)


# ---------------------------------------------------------------------------------- demucs


@pytest.fixture(scope="module")
def demucs_default():
    torch.manual_seed(0)
    return build_model("demucs").eval()


def test_demucs_default_structure(demucs_default):
    model = demucs_default
    assert model.sources == ("drums", "bass", "other", "vocals")
    assert (model.sample_rate, model.audio_channels) == (44100, 2)
    assert len(model.encoder) == len(model.decoder) == 6
    convs = [layer[0] for layer in model.encoder]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024, 2048]
    assert all(c.kernel_size == (8,) and c.stride == (4,) for c in convs)
    lstm = model.lstm.lstm
    assert lstm.bidirectional and lstm.num_layers == 2 and lstm.input_size == 2048
    assert model.lstm.proj.out_features == 2048
    assert model.decoder[-1][-1].out_channels == 4 * 2  # S * C, no ReLU on the last layer


def test_demucs_rescales_conv_weights_towards_reference():
    plain = _tiny("demucs", rescale=0.0)
    scaled = _tiny("demucs")  # rescale=0.1, same seed
    pairs = [
        (a, b) for a, b in zip(plain.modules(), scaled.modules(), strict=True)
        if isinstance(a, (nn.Conv1d, nn.ConvTranspose1d))
    ]
    assert len(pairs) == 4 * 3
    for a, b in pairs:
        std = a.weight.std()
        scale = (std / 0.1) ** 0.5
        torch.testing.assert_close(b.weight, a.weight / scale)
        torch.testing.assert_close(b.bias, a.bias / scale)
        torch.testing.assert_close(b.weight.std(), (std * 0.1) ** 0.5)


def test_demucs_default_forward_one_second(demucs_default):
    with torch.no_grad():
        out = demucs_default(0.1 * torch.randn(1, 2, 44100))
    assert out.shape == (1, 4, 2, 44100) and torch.isfinite(out).all()


def test_demucs_valid_length_makes_convs_exact():
    model = _tiny("demucs")
    for n in (1, 1000, 4097):
        frames = model.valid_length(n)
        for _ in range(model.depth):
            assert (frames - model.kernel_size) % model.stride == 0
            frames = (frames - model.kernel_size) // model.stride + 1
        assert frames >= 1


def test_demucs_standardisation_makes_output_scale_equivariant():
    model = _tiny("demucs").eval()
    mix = _mix(model, 4097)
    with torch.no_grad():
        torch.testing.assert_close(model(10 * mix), 10 * model(mix), rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------ conv_tasnet


def _tasnet_param_count(C, N, L, B, H, P, X, R, S) -> int:
    block = (B * H + H) + 1 + 2 * H + (H * P + H) + 1 + 2 * H + (H * B + B)  # residual path
    skip = H * B + B  # skip channels == B
    return (
        C * N * L + 2 * N + (N * B + B)  # encoder, gLN, bottleneck
        + R * X * (block + skip) - (H * B + B)  # last block has no residual conv
        + 1 + (B * S * N + S * N)  # PReLU, mask conv
        + N * C * L  # decoder
    )


def test_conv_tasnet_default_size_and_stereo():
    model = build_model("conv_tasnet")
    expected = _tasnet_param_count(C=2, N=256, L=20, B=256, H=512, P=3, X=10, R=4, S=4)
    assert _n_params(model) == expected
    assert 5_000_000 < expected < 20_000_000
    assert model.encoder.in_channels == 2 and model.decoder.out_channels == 2
    assert model.encoder.kernel_size == (20,) and model.encoder.stride == (10,)
    assert len(model.tcn) == 40
    assert [b.depthwise.dilation[0] for b in model.tcn[:10]] == [2**x for x in range(10)]


@pytest.mark.parametrize("mask", ["sigmoid", "softmax"])
def test_conv_tasnet_mask_options(mask):
    model = _tiny("conv_tasnet", mask=mask).eval()
    with torch.no_grad():
        out = model(_mix(model, 1000))
    assert out.shape == (2, 4, 2, 1000)
    with pytest.raises(ValueError):
        _tiny("conv_tasnet", mask="tanh")


@pytest.mark.parametrize("length", [20, 21, 333, 4000])
def test_conv_tasnet_inference_decoder_equals_the_transposed_convolution(length):
    # without autograd the decoder is a matrix product and an overlap-add of two half frames
    torch.manual_seed(length)
    model = build_model("conv_tasnet", sources=("a", "b"), audio_channels=2, filters=16,
                        filter_length=8, bottleneck_channels=8, hidden_channels=16, blocks=2,
                        repeats=1).eval()
    mix = torch.randn(3, 2, length)
    with torch.enable_grad():
        reference = model(mix)
    with torch.no_grad():
        fast = model(mix)
    assert reference.requires_grad and fast.shape == reference.shape == (3, 2, 2, length)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_conv_tasnet_without_skip_paths():
    model = _tiny("conv_tasnet", skip_channels=0).train()
    model(_mix(model, 1000)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


# -------------------------------------------------------------------------------- spec_unet


def _force_unit_mask(final_conv: nn.Module) -> None:
    """Make a mask layer output sigmoid(50) == 1 everywhere."""
    with torch.no_grad():
        final_conv.weight.zero_()
        final_conv.bias.fill_(50.0)


@pytest.mark.parametrize("input_kind", ["magnitude", "complex"])
@pytest.mark.parametrize("output_kind", ["mask", "spectrum"])
def test_spec_unet_input_output_kinds(input_kind, output_kind):
    model = _tiny("spec_unet", input=input_kind, output=output_kind).train()
    out = model(_mix(model, 4097))
    assert out.shape == (2, 2, 2, 4097) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("input_kind", ["magnitude", "complex"])
def test_spec_unet_predict_noise_sums_to_mixture(input_kind):
    model = _tiny(
        "spec_unet", sources=("speech", "noise"), sample_rate=16000, audio_channels=1,
        predict="noise", input=input_kind,
    ).eval()
    mix = _mix(model, 4097)
    with torch.no_grad():
        out = model(mix)
    assert model.sources == ("speech", "noise") and out.shape == (2, 2, 1, 4097)
    torch.testing.assert_close(out.sum(dim=1), mix, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        _tiny("spec_unet", sources=("a", "b", "c"), predict="noise")


def test_spec_unet_softmax_masks_share_the_mixture():
    model = _tiny("spec_unet", sources=("a", "b", "c", "d"), mask="softmax").train()
    mix = _mix(model, 4097)
    out = model(mix)
    assert out.shape == (2, 4, 2, 4097)
    torch.testing.assert_close(out.sum(dim=1), mix, rtol=0, atol=1e-5)
    out[:, 1].square().mean().backward()  # every source's mask gets a gradient from one source
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="mask"):
        _tiny("spec_unet", mask="relu")
    with pytest.raises(ValueError, match="softmax"):
        _tiny("spec_unet", mask="softmax", input="complex")


def test_spec_unet_band_limited_gives_the_band_above_to_the_last_source():
    model = _tiny("spec_unet", sources=("bass", "rest"), mask="softmax", max_frequency=1000.0)
    model.train()
    assert model.band_bins == math.ceil(1000 * 256 / model.sample_rate) + 1
    mix = _mix(model, 4097)
    out = model(mix)
    torch.testing.assert_close(out.sum(dim=1), mix, rtol=0, atol=1e-5)
    above = slice(model.band_bins + 4, None)  # a few bins off the edge: the window's leak
    bass_high = stft(out[:, 0].detach(), 256, 64)[..., above, :].abs().square().sum()
    mix_high = stft(mix, 256, 64)[..., above, :].abs().square().sum()
    assert bass_high < 1e-3 * mix_high  # the mixture above the band went to "rest"
    out[:, 0].square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    for kwargs, message in (({"max_frequency": 0.0}, "max_frequency must be in"),
                            ({"max_frequency": 1e5}, "max_frequency must be in"),
                            ({"max_frequency": 500.0, "output": "spectrum"}, "needs output")):
        with pytest.raises(ValueError, match=message):
            _tiny("spec_unet", **kwargs)


def test_spec_unet_unit_mask_returns_the_mixture():
    model = _tiny("spec_unet").eval()
    _force_unit_mask(model.up[0].net[0])
    mix = _mix(model, 4097)
    with torch.no_grad():
        out = model(mix)
    for s in range(len(model.sources)):
        torch.testing.assert_close(out[:, s], mix, rtol=0, atol=1e-5)


def test_spec_unet_dense_and_odd_fft():
    model = _tiny("spec_unet", dense=True, n_fft=200, hop_length=50, dropout=0.5).train()
    out = model(_mix(model, 1000))
    assert out.shape == (2, 2, 2, 1000)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("input_kind", ["magnitude", "complex"])
@pytest.mark.parametrize("output_kind", ["mask", "spectrum"])
def test_spec_unet_normalize_makes_output_scale_equivariant(input_kind, output_kind):
    kw = {"input": input_kind, "output": output_kind, "compress": 0.3}
    mix = _mix(_tiny("spec_unet"), 4097)
    with torch.no_grad():
        model = _tiny("spec_unet", normalize=True, **kw).eval()
        quiet, loud = model(mix), model(mix * 100.0)
        torch.testing.assert_close(loud / 100.0, quiet, rtol=1e-4, atol=1e-5)
        plain = _tiny("spec_unet", normalize=False, **kw).eval()  # level-dependent without it
        assert not torch.allclose(plain(mix * 100.0) / 100.0, plain(mix), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="compress"):
        _tiny("spec_unet", compress=0.0)


def test_spec_unet_default_config():
    model = build_model("spec_unet")
    assert model.sources == ("vocals", "accompaniment")
    assert (model.sample_rate, model.audio_channels) == (44100, 2)
    assert (model.n_fft, model.hop_length, model.depth) == (2048, 512, 6)
    assert [b.net[0].out_channels for b in model.down] == [16, 32, 64, 128, 256, 512]


# -------------------------------------------------------------------------------------- mrx


def test_mrx_default_resolutions_and_decoders():
    model = build_model("mrx")
    assert model.sources == ("speech", "music", "sfx")
    assert model.win_lengths == (1411, 2822, 11290)
    assert model.n_ffts == (2048, 4096, 16384)
    assert model.hop_length == 353
    assert len(model.encoders) == 3
    assert len(model.decoders) == 3 and all(len(d) == 3 for d in model.decoders)
    bins = [n // 2 + 1 for n in model.n_ffts]
    assert [d[0][0].out_features for d in model.decoders] == bins
    lstm = model.lstm.lstm
    assert lstm.bidirectional and lstm.num_layers == 3 and lstm.hidden_size == 256


def test_mrx_resolutions_share_frames():
    model = _tiny("mrx")
    x = torch.randn(1, 4097)
    frames = {
        stft(x, n, model.hop_length, w).shape[-1]
        for n, w in zip(model.n_ffts, model.win_lengths, strict=True)
    }
    assert len(frames) == 1


def test_mrx_unit_masks_return_the_mixture():
    model = _tiny("mrx").eval()
    for per_source in model.decoders:
        for decoder in per_source:
            _force_unit_mask(decoder[0])
    mix = _mix(model, 4097)
    with torch.no_grad():
        out = model(mix)
    for s in range(len(model.sources)):
        torch.testing.assert_close(out[:, s], mix, rtol=0, atol=1e-5)


def test_mrx_softmax_masks_share_the_mixture():
    model = _tiny("mrx", mask="softmax").train()
    mix = _mix(model, 4097)
    out = model(mix)
    assert out.shape == (2, 3, 2, 4097)
    torch.testing.assert_close(out.sum(dim=1), mix, rtol=0, atol=1e-5)
    out[:, 2].square().mean().backward()  # one source's loss reaches every source's decoder
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    sigmoid = _tiny("mrx").eval()
    sigmoid.load_state_dict(model.state_dict())  # same parameters, only the mask differs
    with pytest.raises(ValueError, match="mask"):
        _tiny("mrx", mask="relu")


def test_mrx_channels_are_processed_alike():
    model = _tiny("mrx").eval()
    mono = _mix(model, 1000, batch=1)[:, :1]
    with torch.no_grad():
        out = model(mono.repeat(1, 2, 1))
    torch.testing.assert_close(out[:, :, 0], out[:, :, 1])


def test_mrx_input_power_compresses_the_encoder_input_only():
    plain = _tiny("mrx").eval()
    compressed = _tiny("mrx", input_power=0.3).eval()
    compressed.load_state_dict(plain.state_dict())  # same weights, no new parameters
    spec = stft(torch.randn(1, 4097), plain.n_ffts[0], plain.hop_length, plain.win_lengths[0])
    torch.testing.assert_close(compressed._features(spec),
                               (spec.abs().transpose(1, 2) + 1e-8) ** 0.3)
    torch.testing.assert_close(plain._features(spec), spec.abs().transpose(1, 2))
    mix = _mix(plain, 4097)
    with torch.no_grad():
        assert not torch.allclose(plain(mix), compressed(mix))
    with pytest.raises(ValueError, match="input_power"):
        _tiny("mrx", input_power=0.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_chunked_inference_with_a_one_sample_last_chunk(arch):
    from unweave.inference.chunking import apply

    model = _tiny(arch).eval()
    chunk = round(0.1 * model.sample_rate)
    mix = _mix(model, 2 * chunk + 1, batch=1)[0]  # the last chunk covers a single sample
    out = apply(model, mix, segment=0.1, overlap=0.0, shifts=1)
    assert out.shape == (len(model.sources), model.audio_channels, 2 * chunk + 1)
    assert torch.isfinite(out).all()
