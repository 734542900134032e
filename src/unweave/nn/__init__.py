"""Shared layers used by the model architectures (no layer is declared twice)."""

from .functional import MASK_KINDS, apply_mask_nonlinearity, check_mask, crop_center, pad_center
from .norms import ChannelLayerNorm, GlobalLayerNorm
from .rnn import BLSTM
from .tcn import TemporalBlock
from .unet import DenseBlock2d, DownBlock2d, UpBlock2d

__all__ = [
    "BLSTM",
    "MASK_KINDS",
    "ChannelLayerNorm",
    "DenseBlock2d",
    "DownBlock2d",
    "GlobalLayerNorm",
    "TemporalBlock",
    "UpBlock2d",
    "apply_mask_nonlinearity",
    "check_mask",
    "crop_center",
    "pad_center",
]
