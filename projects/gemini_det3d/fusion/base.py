"""The interface every fusion module shares, and the check of its inputs.

A fusion module receives the tokens of one stage of the two streams,
``x_rgb, x_lidar: Tensor[B, N, C]`` (N = H * W pixels, row-major), plus
``hw_shape = (H, W)``, and returns ``(y_rgb, y_lidar)`` of the same shapes. So an
ablation swaps one ``type=`` in the backbone's ``fusion_cfg`` and nothing else.
Every module takes ``embed_dims`` (C) as its first argument: the backbone builds one
module per fused layer with that layer's channel count. A module whose method has a
training loss of its own (TokenFusion's L1 on its scores) hands it over through
:meth:`BaseFusion.pop_auxiliary_losses`; the detector adds it to the head's losses.
"""
from typing import Dict, Optional, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from ..errors import GeminiInputError


class FusionInputError(GeminiInputError):
    """Raised, with one line naming the module and the problem, on malformed inputs."""


class BaseFusion(BaseModule):
    """Base class: stores ``embed_dims`` and validates the two token tensors.

    Args:
        embed_dims (int): C, the channel count of both streams' tokens.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(embed_dims, int) or embed_dims <= 0:
            raise FusionInputError(
                f'{type(self).__name__}: embed_dims must be a positive int, got {embed_dims!r}')
        self.embed_dims = embed_dims

    def check_inputs(self, x_rgb: Tensor, x_lidar: Tensor,
                     hw_shape: Optional[Tuple[int, int]] = None) -> None:
        """Raise :class:`FusionInputError` unless both are ``[B, N, C]`` alike, N = H * W."""
        name = type(self).__name__
        if x_rgb.dim() != 3 or x_rgb.shape != x_lidar.shape:
            raise FusionInputError(
                f'{name}: expected two [B, N, C] tensors of the same shape, got '
                f'{tuple(x_rgb.shape)} and {tuple(x_lidar.shape)}')
        if x_rgb.shape[-1] != self.embed_dims:
            raise FusionInputError(
                f'{name}: built for C={self.embed_dims} channels, got tokens with '
                f'C={x_rgb.shape[-1]}')
        if hw_shape is not None and hw_shape[0] * hw_shape[1] != x_rgb.shape[1]:
            raise FusionInputError(
                f'{name}: hw_shape {tuple(hw_shape)} does not match N={x_rgb.shape[1]} tokens')

    def pop_auxiliary_losses(self) -> Dict[str, Tensor]:
        """Losses of this module's last training forward, then forgotten (none by default).

        Popped, not read, so that a forward that did not run (an all-empty batch) can never
        hand over a stale loss from an earlier iteration.
        """
        return {}
