"""Shared layers: norms, TCN block, BLSTM, U-Net blocks, pad/crop helpers."""

from __future__ import annotations

import pytest
import torch

from unweave.nn import (
    BLSTM,
    ChannelLayerNorm,
    DenseBlock2d,
    DownBlock2d,
    GlobalLayerNorm,
    TemporalBlock,
    UpBlock2d,
    crop_center,
    pad_center,
)


def test_global_layer_norm_matches_its_definition():
    norm = GlobalLayerNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = 3.0 + 5.0 * torch.randn(2, 6, 50)
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = (x - mean).pow(2).mean(dim=(1, 2), keepdim=True)
    expected = norm.weight.view(1, -1, 1) * (x - mean) / torch.sqrt(var + 1e-8)
    expected = expected + norm.bias.view(1, -1, 1)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)


def test_channel_layer_norm_normalises_every_frame():
    y = ChannelLayerNorm(8)(2.0 + 4.0 * torch.randn(2, 8, 30))
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 30), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [2, 3, 4])
@pytest.mark.parametrize("dilation", [1, 4])
def test_temporal_block_keeps_frames(kernel_size, dilation):
    block = TemporalBlock(8, 16, 4, kernel_size, dilation)
    res, skip = block(torch.randn(2, 8, 37))
    assert res.shape == (2, 8, 37) and skip.shape == (2, 4, 37)
    last = TemporalBlock(8, 16, 0, kernel_size, dilation, residual=False)
    x = torch.randn(1, 8, 37)
    out, none = last(x)
    assert none is None and torch.equal(out, x)


def test_temporal_block_depthwise_taps_are_centred():
    block = TemporalBlock(2, 4, 2, 3, dilation=4)
    with torch.no_grad():
        block.depthwise.weight.fill_(1.0)
        block.depthwise.bias.zero_()
        impulse = torch.zeros(1, 4, 41)
        impulse[..., 20] = 1.0
        out = block.depthwise(impulse)
    assert out.shape == impulse.shape
    assert torch.nonzero(out[0, 0]).flatten().tolist() == [16, 20, 24]


@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5])
@pytest.mark.parametrize("dilation", [1, 2, 7, 64])
@pytest.mark.parametrize("skip_channels, residual", [(4, True), (4, False), (0, True)])
def test_temporal_block_inference_path_equals_the_convolutions(kernel_size, dilation,
                                                                skip_channels, residual):
    # without autograd the block uses shifted multiply-adds for the depthwise convolution and one
    # stacked 1x1 convolution for residual + skip; with autograd, the nn.Conv1d modules
    torch.manual_seed(kernel_size * 100 + dilation)
    block = TemporalBlock(8, 12, skip_channels, kernel_size, dilation, residual=residual)
    with torch.no_grad():
        block.depthwise.bias.uniform_(-0.5, 0.5)  # zero by default: check that it is added
    x = torch.randn(2, 8, 50)  # dilation 64 reaches past both ends
    with torch.enable_grad():
        reference = block(x)
    with torch.no_grad():
        fast = block(x)
    for want, got in zip(reference, fast, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the reference really took the autograd path
    assert any(out is not None and out.requires_grad for out in reference)


def test_blstm_shapes():
    assert BLSTM(6, 5, 2)(torch.randn(3, 11, 6)).shape == (3, 11, 10)
    assert BLSTM(6, 5, 1, output_size=6)(torch.randn(3, 11, 6)).shape == (3, 11, 6)


def test_unet_blocks_halve_and_double():
    x = torch.randn(2, 3, 16, 12)
    down = DownBlock2d(3, 8)(x)
    assert down.shape == (2, 8, 8, 6)
    assert DenseBlock2d(8, 4)(down).shape == down.shape
    assert UpBlock2d(8, 3, dropout=0.5)(down).shape == x.shape
    assert UpBlock2d(8, 5, final=True)(down).shape == (2, 5, 16, 12)


@pytest.mark.parametrize("length,target", [(1, 1), (1, 10), (7, 12), (1000, 4097)])
def test_pad_center_then_crop_center_is_identity(length, target):
    x = torch.randn(2, length)
    padded = pad_center(x, target)
    assert padded.shape == (2, target)
    assert torch.equal(crop_center(padded, length), x)
    with pytest.raises(ValueError):
        crop_center(x, length + 1)
