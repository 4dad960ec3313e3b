"""Point painting: each LiDAR point carries what the camera says stands at its pixel.

Why: ``PointImageSemanticLoss`` teaches the image branch to name the object at each point's
pixel (its classifier reads the features PointFusion samples). PointFusion then adds a 64-wide
projection of those features to the point features, and within the demo's budget the 3D head
learns its boxes from the geometry and ignores them: swapping the camera pictures did not move
the AP although it halved the classifier's pedestrian recall at the points
(``benchmarks/image_point_features.py``, docs/experiments.md). PointPainting (Vora et al.,
CVPR 2020) hands the 3D detector the camera's per-point class scores as extra input channels,
beside x, y, z and reflectance, where the voxel encoder reads them as directly as the
reflectance.

What: the classifier's softmax over (background, classes) at every point, from the same
forward's image features, appended to the points the voxel encoder reads (hard voxels
``[M, P, C]`` or dynamic voxels' points ``[N, C]``). Points outside the picture get zeros (no
class, and told apart from in-picture points, whose scores sum to 1). The scores are detached:
the classifier learns from its own loss, and the 3D head reads its answer as it reads a
sensor's, without rewriting it.
"""
from typing import List, Sequence

import torch
from torch import Tensor, nn

from .point_image_semantic_loss import points_in_picture


@torch.no_grad()
def point_class_scores(fusion_layer: nn.Module, classifier: nn.Module,
                       img_feats: Sequence[Tensor], points: List[Tensor],
                       metas: List[dict]) -> List[Tensor]:
    """B ``[N_i, K + 1]`` softmax scores of ``classifier`` at each point's pixel; zeros for the
    points outside the picture.

    Args:
        fusion_layer: PointFusion (its lateral convolutions, projection and augmentations).
        classifier: ``[.., C_sampled] -> [.., K + 1]`` logits (``PointImageSemanticLoss``'s).
        img_feats: the image neck's ``[B, C, H_l, W_l]`` maps.
        points: B ``[N_i, >=3]`` LiDAR points (x, y, z first).
        metas: B samples' metainfo.
    """
    counts = [len(p) for p in points]
    if sum(counts) == 0:
        return [points[0].new_zeros((0, classifier.out_features)) for _ in points]
    sampled = fusion_layer.obtain_mlvl_feats(img_feats, points, metas)  # [sum N_i, C_sampled]
    scores = classifier(sampled).softmax(-1)
    scores = scores * points_in_picture(fusion_layer, img_feats, points, metas)[:, None]
    return list(scores.split(counts))


def paint_hard_voxels(voxels: Tensor, num_points: Tensor, coors: Tensor, batch_size: int,
                      fusion_layer: nn.Module, classifier: nn.Module,
                      img_feats: Sequence[Tensor], metas: List[dict]) -> Tensor:
    """``[M, P, C + K + 1]``: hard voxels with each point's class scores appended (zeros in
    the padding rows).

    Args:
        voxels: ``[M, P, C]`` points of each voxel, padded.
        num_points: ``[M]`` points in each voxel.
        coors: ``[M, 4]`` voxel coordinates, the sample index in column 0.
        batch_size: B (samples with no voxel paint nothing).
        The rest: as ``point_class_scores``.
    """
    valid = torch.arange(voxels.shape[1], device=voxels.device)[None] < num_points[:, None]
    sample_of_voxel = coors[:, 0].long()
    rows = [sample_of_voxel == i for i in range(batch_size)]
    points = [voxels[r][valid[r]] for r in rows]
    scores = point_class_scores(fusion_layer, classifier, img_feats, points, metas)
    canvas = voxels.new_zeros(voxels.shape[:2] + (classifier.out_features, ))
    for r, s in zip(rows, scores):
        # row-major boolean indexing: the same order as voxels[r][valid[r]] above
        canvas[r[:, None] & valid] = s
    return torch.cat([voxels, canvas], dim=-1)


def paint_dynamic_points(points: Tensor, coors: Tensor, batch_size: int,
                         fusion_layer: nn.Module, classifier: nn.Module,
                         img_feats: Sequence[Tensor], metas: List[dict]) -> Tensor:
    """``[N, C + K + 1]``: dynamic voxels' points (all samples, in order) with their class
    scores appended; ``coors`` ``[N, 4]`` has each point's sample index in column 0 (also for
    points outside the grid)."""
    rows = [coors[:, 0].long() == i for i in range(batch_size)]
    scores = point_class_scores(fusion_layer, classifier, img_feats,
                                [points[r] for r in rows], metas)
    painted = points.new_zeros((len(points), classifier.out_features))
    for r, s in zip(rows, scores):
        painted[r] = s
    return torch.cat([points, painted], dim=-1)
