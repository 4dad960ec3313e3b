"""GeminiFusion: pixel-wise cross-modal attention at linear cost (Jia et al., ICML 2024).

Reference semantics, for aligned streams X1 (RGB), X2 (LiDAR) of shape B x N x C, at
every pixel i (Y2 is the mirror image, with its own attention weights and noise row):

    Y1[i] = X1[i] + Attention(Q1, K1, V1)
    Q1 = X1[i] Wq
    K1 = [ (nK[0] + X1[i]) Wk ,  (X1[i] * phi(X1[i], X2[i])) Wk ]      two keys
    V1 = [ (nV[0] + X1[i]) Wv ,   X2[i] Wv ]                           two values

- phi, the relation discriminator, is an MLP 2C -> C (GELU) -> C followed by a softmax
  over channels, shared by both directions. Like the authors' code
  (JiaDingCN/GeminiFusion, ``models/swin_transformer.py``, ``SwinTransformerBlock``), it
  reads ``[own stream, other stream]``: phi(X1, X2) for direction 1, phi(X2, X1) for 2.
- nK, nV: the layer-adaptive noise, two learned ``nn.Embedding(2, C)`` (row 0 for the
  RGB queries, row 1 for the LiDAR queries), initialised from N(0, 1) like
  ``nn.Embedding``; not noise sampled at run time.
- Multi-head scaled dot-product attention (8 heads by default) over the two keys, then
  an output projection; Wq, Wk, Wv and the output projection are per direction (the
  authors use one ``nn.MultiheadAttention`` per direction).

Where this differs from the authors' code, and why:
- They loop over the batch in Python; here one batched computation covers all B*N
  pixels.
- They run the fusion inside each Swin block, on the window-attention output before
  the block's residual add; here the module is a self-contained step applied to the
  streams themselves (the backbone calls it after a block or a stage), as the project's
  fusion interface asks. The residual ``X + Attention`` is kept.
- The key projection has no bias: a bias shared by both keys adds the same q.b to both
  logits and cancels in the softmax, so it could never learn anything.
- No dropout (the authors' rate is 0).

How the two-key attention is computed (mathematically equal to the formula above): a
softmax over two logits is the sigmoid of their difference, and both the key
difference and the value difference are linear in the inputs, so per head h

    w_self = sigmoid( <q_h, (nK + X1 - X1 * phi) Wk_h> / sqrt(d) )   weight of key 0
    out_h  = X2 Wv_h + b_v + w_self * ((nV + X1 - X2) Wv_h)

That is four C x C products (q, key gap, value, value gap) plus the output projection
per direction, and phi's 3 C^2: every step is a per-token matmul or elementwise op, so
the cost is O(B N C^2) time and O(B N C) memory, with no N x N term.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from .base import BaseFusion, FusionInputError


def _trunc_normal_linear(layer: nn.Linear) -> None:
    """Initialise like the authors' ``_init_weights``: weight ~ TN(0, 0.02), bias 0."""
    nn.init.trunc_normal_(layer.weight, std=0.02)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class RelationDiscriminator(nn.Module):
    """phi: per-pixel channel weights from a pair of tokens.

    ``phi(own, other) = softmax_C( W2 GELU(W1 [own, other] + b1) + b2 )``, W1: 2C -> C,
    W2: C -> C.

    Args:
        embed_dims (int): C.
    """

    def __init__(self, embed_dims: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * embed_dims, embed_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(embed_dims, embed_dims)
        for layer in (self.fc1, self.fc2):
            _trunc_normal_linear(layer)

    def forward(self, own: Tensor, other: Tensor) -> Tensor:
        """own, other: ``[B, N, C]`` -> ``[B, N, C]``, each pixel's weights summing to 1."""
        hidden = self.act(self.fc1(torch.cat([own, other], dim=-1)))
        return self.fc2(hidden).softmax(dim=-1)


class PixelPairAttention(nn.Module):
    """One direction of GeminiFusion: each query pixel attends over its own two keys.

    Args:
        embed_dims (int): C.
        num_heads (int): attention heads; C must be divisible by it.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dims)
        self.query_proj = nn.Linear(embed_dims, embed_dims)
        self.key_proj = nn.Linear(embed_dims, embed_dims, bias=False)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        for layer in (self.query_proj, self.key_proj, self.value_proj, self.out_proj):
            _trunc_normal_linear(layer)

    def _split_heads(self, x: Tensor) -> Tensor:
        """``[B, N, C]`` -> ``[B, N, heads, C / heads]`` (a view)."""
        return x.unflatten(-1, (self.num_heads, self.head_dims))

    def forward(self, own: Tensor, other: Tensor, relation: Tensor,
                key_noise: Tensor, value_noise: Tensor) -> Tensor:
        """Attention output for the queries of ``own`` (no residual added).

        Args:
            own, other, relation: ``[B, N, C]``; relation = phi(own, other).
            key_noise, value_noise: ``[C]``, this direction's noise rows.

        Returns:
            Tensor: ``[B, N, C]``.
        """
        query = self._split_heads(self.query_proj(own))
        # key 0 minus key 1; the per-head dot product with it is logit 0 minus logit 1
        key_gap = self._split_heads(self.key_proj(key_noise + own - own * relation))
        weight_self = torch.sigmoid((query * key_gap).sum(dim=-1) * self.scale)  # [B, N, h]
        value_cross = self._split_heads(self.value_proj(other))
        value_gap = self._split_heads(F.linear(value_noise + own - other, self.value_proj.weight))
        mixed = value_cross + weight_self.unsqueeze(-1) * value_gap  # [B, N, h, C / h]
        return self.out_proj(mixed.flatten(-2))


@MODELS.register_module()
class GeminiFusion(BaseFusion):
    """Pixel-wise fusion of two aligned streams: each pixel attends to itself and its
    partner in the other modality (see the module docstring for the exact formula).

    Args:
        embed_dims (int): C, channels of both streams.
        num_heads (int): attention heads (default 8, as the authors use for every stage).
        init_cfg (dict, optional): mmengine initialisation config.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape=(H, W))`` ->
    ``(y_rgb [B, N, C], y_lidar [B, N, C])``.
    """

    def __init__(self, embed_dims: int, num_heads: int = 8, init_cfg: Optional[dict] = None):
        super().__init__(embed_dims, init_cfg=init_cfg)
        if num_heads <= 0 or embed_dims % num_heads:
            raise FusionInputError(
                f'GeminiFusion: embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.relation_discriminator = RelationDiscriminator(embed_dims)
        # row 0: noise for the RGB queries' keys/values, row 1: for the LiDAR queries'
        self.key_noise = nn.Embedding(2, embed_dims)
        self.value_noise = nn.Embedding(2, embed_dims)
        self.rgb_attention = PixelPairAttention(embed_dims, num_heads)
        self.lidar_attention = PixelPairAttention(embed_dims, num_heads)

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        relation_rgb = self.relation_discriminator(x_rgb, x_lidar)
        relation_lidar = self.relation_discriminator(x_lidar, x_rgb)
        y_rgb = x_rgb + self.rgb_attention(
            x_rgb, x_lidar, relation_rgb, self.key_noise.weight[0], self.value_noise.weight[0])
        y_lidar = x_lidar + self.lidar_attention(
            x_lidar, x_rgb, relation_lidar, self.key_noise.weight[1], self.value_noise.weight[1])
        return y_rgb, y_lidar
