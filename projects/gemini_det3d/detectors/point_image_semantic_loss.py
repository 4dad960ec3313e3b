"""``PointImageSemanticLoss``: teach the image branch what stands at each LiDAR point's pixel.

Why: trained only through the 3D head, a from-scratch image branch gets its gradient after the
point features have already explained most of the loss, and the fused model learns to ignore
the camera (``tools/probe_camera.py``: swapping every frame's picture for another's did not
lower its AP). MVX-Net's image branch is trained on 2D detection before the 3D one, which
gives it a direct signal; this loss gives the same kind of signal from the 3D labels the
detector trains on anyway, at exactly the features PointFusion fuses.

What: the image features that PointFusion samples for each LiDAR point (its own
``obtain_mlvl_feats``: lateral convolutions, then every level at the point's projected pixel,
through the recorded augmentations) go through one linear layer that predicts the point's
class: background or the class of the labelled 3D box it lies in. Points that project outside
the picture carry no image feature and are left out. Per-class mean cross-entropy, averaged
over the classes present, so the few points on pedestrians weigh as much as the many on the
ground. An unlabelled object (a bollard the LiDAR takes for a pedestrian) is background here:
the camera is asked to tell it apart, which the LiDAR geometry cannot always do.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import points_in_boxes_all, points_in_boxes_cpu
from mmdet3d.registry import MODELS
from torch import Tensor, nn


def points_in_boxes_label(points: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
    """``[N]`` long: 1 + the label of the (first) box each point lies in, 0 outside every box.

    Args:
        points: ``[N, >=3]`` LiDAR x, y, z.
        boxes: ``[M, >=7]`` LiDAR boxes (x, y, z of the bottom centre, l, w, h, yaw), as
            ``LiDARInstance3DBoxes.tensor``.
        labels: ``[M]`` class indices.
    """
    target = points.new_zeros(len(points), dtype=torch.long)
    if len(boxes) == 0 or len(points) == 0:
        return target
    # mmcv's op (the same convention: bottom-centre z, yaw about z); its CPU kernel on CPU
    in_boxes = points_in_boxes_all if points.is_cuda else points_in_boxes_cpu
    inside = in_boxes(points[None, :, :3].float().contiguous(),
                      boxes[None, :, :7].float().contiguous())[0].bool()  # [N, M]
    hit = inside.any(1)
    first = inside.float().argmax(1)
    target[hit] = labels.long()[first[hit]] + 1
    return target


def points_in_picture(fusion_layer: nn.Module, img_feats: Sequence[Tensor],
                      points: List[Tensor], metas: List[dict]) -> Tensor:
    """``[sum N_i]`` bool: which points PointFusion samples inside the picture, by the same
    sampling (its projection, augmentations and border handling) of an all-ones map."""
    ones = img_feats[0].new_ones((1, 1) + tuple(img_feats[0].shape[-2:]))
    # (point_sample squeezes a one-channel result to [N])
    return torch.cat([fusion_layer.sample_single(ones, pts[:, :3], meta).reshape(-1) > 0.5
                      for pts, meta in zip(points, metas)])


@MODELS.register_module()
class PointImageSemanticLoss(nn.Module):
    """Point classification from the image features PointFusion samples (module docstring).

    Args:
        in_channels (int): width of PointFusion's sampled features
            (``mid_channels * len(img_levels)`` with lateral convolutions).
        num_classes (int): labelled classes (background is one more).
        loss_weight (float): factor on the loss.
        max_points (int): points per frame the loss looks at: every point in a box and the
            first others (in the shuffled order of the training pipeline) up to this number
            (the loss's cost stays fixed).
    """

    def __init__(self, in_channels: int, num_classes: int = 3, loss_weight: float = 1.0,
                 max_points: int = 8192):
        super().__init__()
        self.classifier = nn.Linear(in_channels, num_classes + 1)
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.max_points = max_points

    def _chosen_points(self, target: Tensor) -> Tensor:
        """Indices of the points the loss uses: all in boxes, others up to max_points."""
        fg = torch.nonzero(target > 0, as_tuple=False)[:, 0]
        bg = torch.nonzero(target == 0, as_tuple=False)[:, 0]
        room = max(self.max_points - len(fg), 0)
        # the first ones: the training pipeline's PointShuffle has already drawn the order, and
        # no draw here leaves torch's random state (exact resume) alone
        return torch.cat([fg, bg[:room]])

    def forward(self, fusion_layer: nn.Module, img_feats: Sequence[Tensor],
                points: List[Tensor], metas: List[dict], gt_boxes: List[Tensor],
                gt_labels: List[Tensor]) -> dict:
        """``{'loss_img_point_sem': scalar}``.

        Args:
            fusion_layer: the voxel encoder's PointFusion (its sampling and lateral convs).
            img_feats: the image neck's ``[B, C, H_l, W_l]`` maps.
            points: B ``[N_i, C]`` augmented LiDAR points.
            metas: B samples' metainfo (projection and image augmentations).
            gt_boxes: B ``[M_i, 7]`` LiDAR boxes in the same (augmented) frame as the points.
            gt_labels: B ``[M_i]`` class indices.
        """
        chosen, targets = [], []
        for pts, boxes, labels in zip(points, gt_boxes, gt_labels):
            target = points_in_boxes_label(pts, boxes, labels)
            keep = self._chosen_points(target)
            chosen.append(pts[keep])
            targets.append(target[keep])
        sampled = fusion_layer.obtain_mlvl_feats(img_feats, chosen, metas)  # [N, in_channels]
        in_image = points_in_picture(fusion_layer, img_feats, chosen, metas)
        target = torch.cat(targets)[in_image]
        logits = self.classifier(sampled[in_image])
        per_point = F.cross_entropy(logits, target, reduction='none')
        present = [per_point[target == c].mean() for c in range(self.num_classes + 1)
                   if (target == c).any()]
        if not present:  # no point in the picture: a zero that still reaches the weights
            return dict(loss_img_point_sem=logits.sum() * 0.0 + sampled.sum() * 0.0)
        return dict(loss_img_point_sem=self.loss_weight * torch.stack(present).mean())
