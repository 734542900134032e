"""Shared layers used by the model architectures (no layer is declared twice)."""

from .functional import crop_center, pad_center
from .norms import ChannelLayerNorm, GlobalLayerNorm
from .rnn import BLSTM
from .tcn import TemporalBlock
from .unet import DenseBlock2d, DownBlock2d, UpBlock2d

__all__ = [
    "BLSTM",
    "ChannelLayerNorm",
    "DenseBlock2d",
    "DownBlock2d",
    "GlobalLayerNorm",
    "TemporalBlock",
    "UpBlock2d",
    "crop_center",
    "pad_center",
]
