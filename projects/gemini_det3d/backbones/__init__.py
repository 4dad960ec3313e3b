"""Backbones: the two-stream Swin Transformer that hosts the fusion modules."""
from .channel_slice import ChannelSliceBackbone
from .dual_swin import DualSwinInputError, DualSwinTransformer
from .swin_checkpoint import SwinCheckpointError, load_swin_checkpoint

__all__ = ['ChannelSliceBackbone', 'DualSwinTransformer', 'DualSwinInputError', 'SwinCheckpointError',
           'load_swin_checkpoint']
