"""Full cross-attention baseline: every token attends to every token of the other stream.

``Y1 = X1 + MHA(Q = X1 Wq, K = X2 Wk, V = X2 Wv)``, and symmetrically for Y2 with its own
weights: the same residual multi-head attention as GeminiFusion, but over all N keys of
the other stream instead of two per pixel. Its cost is O(B N^2 C) time; its memory is
O(B heads N^2) where the attention matrix is materialised (PyTorch's
``scaled_dot_product_attention`` may pick a fused kernel that avoids storing it, but the
time stays quadratic). No positional encoding: the baseline is the mixing operator alone.
"""
import math
from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from .base import BaseFusion, FusionInputError


class GlobalCrossAttention(nn.Module):
    """One direction: queries from one stream, keys and values from the other.

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads; C must be divisible by it.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.query_proj = nn.Linear(embed_dims, embed_dims)
        self.key_proj = nn.Linear(embed_dims, embed_dims)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        for layer in (self.query_proj, self.key_proj, self.value_proj, self.out_proj):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def _heads_first(self, x: Tensor) -> Tensor:
        """``[B, N, C]`` -> ``[B, heads, N, C / heads]``."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, own: Tensor, other: Tensor) -> Tensor:
        """own, other: ``[B, N, C]`` -> attention output ``[B, N, C]`` (no residual)."""
        query = self._heads_first(self.query_proj(own))
        key = self._heads_first(self.key_proj(other))
        value = self._heads_first(self.value_proj(other))
        mixed = F.scaled_dot_product_attention(
            query, key, value, scale=1.0 / math.sqrt(query.shape[-1]))
        return self.out_proj(mixed.transpose(1, 2).flatten(-2))


@MODELS.register_module()
class CrossAttentionFusion(BaseFusion):
    """Bidirectional global cross-attention between the two streams (quadratic in N).

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads (default 8, as GeminiFusion).
        init_cfg (dict, optional): mmengine initialisation config.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape)`` ->
    ``(y_rgb [B, N, C], y_lidar [B, N, C])``.
    """

    def __init__(self, embed_dims: int, num_heads: int = 8, init_cfg: Optional[dict] = None):
        super().__init__(embed_dims, init_cfg=init_cfg)
        if num_heads <= 0 or embed_dims % num_heads:
            raise FusionInputError(
                f'CrossAttentionFusion: embed_dims={embed_dims} is not divisible by '
                f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.rgb_attention = GlobalCrossAttention(embed_dims, num_heads)
        self.lidar_attention = GlobalCrossAttention(embed_dims, num_heads)

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        y_rgb = x_rgb + self.rgb_attention(x_rgb, x_lidar)
        y_lidar = x_lidar + self.lidar_attention(x_lidar, x_rgb)
        return y_rgb, y_lidar
