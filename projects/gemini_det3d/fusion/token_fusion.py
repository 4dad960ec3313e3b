"""TokenFusion baseline (Wang et al., CVPR 2022): replace uninformative tokens.

Semantics, following the authors' code (yikaiw/TokenFusion: ``PredictorLG`` and
``TokenExchange``): per stream a score predictor (LayerNorm, then an MLP
C -> C -> C/2 -> C/4 -> 2 with GELUs, softmax) gives every token a score s in (0, 1)
(the softmax's first entry, i.e. a sigmoid of the two logits' difference). A token whose
score is under ``threshold`` (0.02, as in the paper) is replaced by the other stream's
token at the same pixel, passed through a per-direction linear projection; the other
tokens stay.

Two adaptations to this project's placement (the module acts on the streams themselves,
after a Swin block or stage, not on an attention branch):
- The authors multiply kept tokens by their score, which lets the score predictor learn.
  On the stream itself that would halve the features at every fused layer, so kept
  tokens are multiplied by ``s / s.detach()``: the value stays the token, the gradient
  to the score is that of ``x * s`` rescaled by 1/s.
- The projections start as the identity (weight I, bias 0), so that at the start the
  replacement is the authors' plain substitution.
The paper's L1 sparsity loss on the scores (what drives scores under the threshold; the
authors add ``lamda * sum |s|`` over every fused layer, both streams and the whole batch,
lamda = 1e-4) is computed in each training forward and handed to the detector by
:meth:`TokenFusion.pop_auxiliary_losses` as ``loss_token_l1``; the last scores are also
kept in ``last_scores``.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from .base import BaseFusion


class TokenScorer(nn.Module):
    """Per-token informativeness score in (0, 1).

    Args:
        embed_dims (int): C (>= 4).
    """

    def __init__(self, embed_dims: int):
        super().__init__()
        half, quarter = max(embed_dims // 2, 1), max(embed_dims // 4, 1)
        self.net = nn.Sequential(
            nn.LayerNorm(embed_dims),
            nn.Linear(embed_dims, embed_dims), nn.GELU(),
            nn.Linear(embed_dims, half), nn.GELU(),
            nn.Linear(half, quarter), nn.GELU(),
            nn.Linear(quarter, 2))

    def forward(self, x: Tensor) -> Tensor:
        """x: ``[B, N, C]`` -> scores ``[B, N]``."""
        return self.net(x).softmax(dim=-1)[..., 0]


@MODELS.register_module()
class TokenFusion(BaseFusion):
    """Token substitution between the two streams.

    Args:
        embed_dims (int): C.
        threshold (float): tokens scoring below it are replaced (default 0.02).
        l1_weight (float): weight of the L1 sparsity loss on the scores (the authors'
            ``lamda``, 1e-4); 0 turns it off.
        init_cfg (dict, optional): mmengine initialisation config.

    Shapes: ``forward(x_rgb [B, N, C], x_lidar [B, N, C], hw_shape)`` ->
    ``(y_rgb [B, N, C], y_lidar [B, N, C])``.
    """

    def __init__(self, embed_dims: int, threshold: float = 0.02, l1_weight: float = 1e-4,
                 init_cfg: Optional[dict] = None):
        super().__init__(embed_dims, init_cfg=init_cfg)
        self.threshold = threshold
        self.l1_weight = l1_weight
        self.rgb_scorer = TokenScorer(embed_dims)
        self.lidar_scorer = TokenScorer(embed_dims)
        self.lidar_to_rgb = nn.Linear(embed_dims, embed_dims)
        self.rgb_to_lidar = nn.Linear(embed_dims, embed_dims)
        for projection in (self.lidar_to_rgb, self.rgb_to_lidar):
            nn.init.eye_(projection.weight)
            nn.init.zeros_(projection.bias)
        self.last_scores: Optional[Tuple[Tensor, Tensor]] = None
        self._sparsity_loss: Optional[Tensor] = None

    def scores(self, x_rgb: Tensor, x_lidar: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-token scores ``([B, N], [B, N])`` of the RGB and the LiDAR tokens."""
        return self.rgb_scorer(x_rgb), self.lidar_scorer(x_lidar)

    def _substitute(self, own: Tensor, score: Tensor, replacement: Tensor) -> Tensor:
        keep = (score >= self.threshold).unsqueeze(-1)
        score = score.unsqueeze(-1)
        # value: own; gradient reaches the scorer (the clamp keeps replaced, score-0 tokens finite)
        kept = own * (score / score.detach().clamp_min(1e-12))
        return torch.where(keep, kept, replacement)

    def forward(self, x_rgb: Tensor, x_lidar: Tensor,
                hw_shape: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
        self.check_inputs(x_rgb, x_lidar, hw_shape)
        score_rgb, score_lidar = self.scores(x_rgb, x_lidar)
        self.last_scores = (score_rgb, score_lidar)
        if self.training and self.l1_weight > 0:
            # scores are in (0, 1): |s| = s, summed as the authors do (not averaged)
            self._sparsity_loss = self.l1_weight * (score_rgb.sum() + score_lidar.sum())
        y_rgb = self._substitute(x_rgb, score_rgb, self.lidar_to_rgb(x_lidar))
        y_lidar = self._substitute(x_lidar, score_lidar, self.rgb_to_lidar(x_rgb))
        return y_rgb, y_lidar

    def pop_auxiliary_losses(self) -> Dict[str, Tensor]:
        """``{'loss_token_l1': l1_weight * sum |s|}`` of the last training forward, or ``{}``."""
        loss, self._sparsity_loss = self._sparsity_loss, None
        return {} if loss is None else {'loss_token_l1': loss}
