"""``GeminiMVXFasterRCNN``: mmdet3d's MVXFasterRCNN as this project uses it.

Three things on top of mmdet3d's MVX detector:

* **The image backbone's own losses.** Fusion modules may add a loss of their own (TokenFusion's
  L1 sparsity loss on its token scores); ``loss`` adds the backbone's
  ``pop_auxiliary_losses()`` to the head's, since mmdet3d's MVX detector only knows the head's.
* **Frames without points.** A frame whose scan puts no point into the voxel grid (a 0-byte
  ``.bin``, a LiDAR dropout, every point outside ``point_cloud_range``) has zero voxels, and
  mmdet3d's MVX path breaks on it: ``extract_pts_feat`` and ``HardVFE.fusion_with_mask`` take
  the batch size from the last voxel's sample index (an ``IndexError``, or one sample too few),
  spconv fails on zero voxels, and an empty sample in the middle of a batch gets boxes predicted
  from an all-zero BEV map (biases alone). So empty samples leave the batch before the model sees
  it: in ``predict`` an empty sample gets an empty prediction (eval mode, so the other samples'
  results do not depend on it); in ``loss`` it contributes nothing, and a batch of only empty
  samples gives zero losses that still reach every trainable parameter (DDP's reduction and the
  logs go on as usual).
* **An optional box post-processor** ``ground_refiner`` (e.g.
  ``dict(type='GroundContactRefiner')``, see ``ground_contact.py``): each frame's predicted boxes
  get their bottoms moved onto the ground measured in that frame's scan, after decoding and NMS.
"""
from typing import Dict, List, Optional

import torch
from mmdet3d.models.detectors import MVXFasterRCNN
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
from mmengine.structures import InstanceData
from torch import Tensor

# Anchor3DHead's loss keys: an all-empty batch reports the same columns in the training log.
_HEAD_LOSS_KEYS = ('loss_cls', 'loss_bbox', 'loss_dir')


@MODELS.register_module()
class GeminiMVXFasterRCNN(MVXFasterRCNN):
    """mmdet3d's MVXFasterRCNN plus the image backbone's losses, frames without points and an
    optional box post-processor (module docstring).

    Args:
        ground_refiner (dict, optional): a module config such as ``GroundContactRefiner``'s,
            applied to each frame's predicted boxes with its points.
        Everything else: as ``MVXFasterRCNN``.
    """

    def __init__(self, *args, ground_refiner: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ground_refiner = MODELS.build(ground_refiner) if ground_refiner else None

    def predict(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
                **kwargs) -> List[Det3DDataSample]:
        samples = self._predict_nonempty(batch_inputs_dict, batch_data_samples, **kwargs)
        if self.ground_refiner is not None:
            for points, sample in zip(batch_inputs_dict['points'], samples):
                pred = sample.pred_instances_3d
                boxes = pred.bboxes_3d
                pred.bboxes_3d = type(boxes)(
                    self.ground_refiner(points, boxes.tensor, pred.labels_3d),
                    box_dim=boxes.box_dim, with_yaw=boxes.with_yaw)
        return samples

    def _predict_nonempty(self, batch_inputs_dict: dict,
                          batch_data_samples: List[Det3DDataSample],
                          **kwargs) -> List[Det3DDataSample]:
        """mmdet3d's predict on the samples with points; empty predictions for the rest."""
        keep = self._samples_with_points(batch_inputs_dict, len(batch_data_samples))
        if len(keep) == len(batch_data_samples):
            return super().predict(batch_inputs_dict, batch_data_samples, **kwargs)
        if len(keep):
            super().predict(take_samples(batch_inputs_dict, keep, len(batch_data_samples)),
                            [batch_data_samples[i] for i in keep.tolist()], **kwargs)
        kept = set(keep.tolist())
        for i, sample in enumerate(batch_data_samples):
            if i not in kept:
                sample.pred_instances_3d = self._empty_prediction(sample)
                sample.pred_instances = InstanceData()
        return batch_data_samples

    def loss(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
             **kwargs) -> Dict[str, Tensor]:
        losses = self._head_loss(batch_inputs_dict, batch_data_samples, **kwargs)
        pop_backbone_losses = getattr(getattr(self, 'img_backbone', None),
                                      'pop_auxiliary_losses', None)
        if pop_backbone_losses is not None:
            losses.update(pop_backbone_losses())
        return losses

    def _head_loss(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
                   **kwargs) -> Dict[str, Tensor]:
        keep = self._samples_with_points(batch_inputs_dict, len(batch_data_samples))
        if len(keep) == len(batch_data_samples):
            return super().loss(batch_inputs_dict, batch_data_samples, **kwargs)
        if len(keep):
            return super().loss(take_samples(batch_inputs_dict, keep, len(batch_data_samples)),
                                [batch_data_samples[i] for i in keep.tolist()], **kwargs)
        # 0 * (sum of every trainable parameter): a zero loss with a (zero) gradient for each
        zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        return {key: zero for key in _HEAD_LOSS_KEYS}

    def _samples_with_points(self, batch_inputs_dict: dict, batch_size: int) -> Tensor:
        """[K] long: indices of the samples that have at least one voxel (or point)."""
        voxels = batch_inputs_dict.get('voxels')
        if voxels is not None:
            counts = torch.bincount(voxels['coors'][:, 0].long(), minlength=batch_size)
        else:
            counts = torch.tensor([len(p) for p in batch_inputs_dict['points']])
        return torch.nonzero(counts > 0, as_tuple=False)[:, 0].cpu()

    def _empty_prediction(self, sample: Det3DDataSample) -> InstanceData:
        """What the head returns for a frame without detections: 0 boxes, scores, labels."""
        device = next(self.parameters()).device
        box_dim = getattr(getattr(self, 'pts_bbox_head', None), 'box_code_size', 7)
        box_type = sample.metainfo.get('box_type_3d', LiDARInstance3DBoxes)
        return InstanceData(
            bboxes_3d=box_type(torch.zeros((0, box_dim), device=device), box_dim=box_dim),
            scores_3d=torch.zeros(0, device=device),
            labels_3d=torch.zeros(0, dtype=torch.long, device=device))


def take_samples(batch_inputs_dict: dict, keep: Tensor, batch_size: int) -> dict:
    """The batch inputs of samples ``keep`` only, renumbered ``0 .. K-1``.

    Args:
        batch_inputs_dict (dict): ``Det3DDataPreprocessor``'s output: ``points`` (list of B
            [N_i, C] tensors), ``imgs`` ([B, C, H, W]) and ``voxels`` (``voxels`` [M, P, C],
            ``coors`` [M, 4] with the sample index in column 0, ``num_points`` [M], ...).
        keep (Tensor): [K] long, ascending sample indices; every sample left out has no voxel.
        batch_size (int): B.
    """
    taken = {}
    for key, value in batch_inputs_dict.items():
        if key == 'voxels':
            # the samples left out own no voxel: only the sample index column changes
            new_index = torch.full((batch_size, ), -1, dtype=torch.long)
            new_index[keep] = torch.arange(len(keep))
            coors = value['coors'].clone()
            coors[:, 0] = new_index.to(coors.device)[coors[:, 0].long()].to(coors.dtype)
            taken[key] = {**value, 'coors': coors}
        elif isinstance(value, (list, tuple)) and len(value) == batch_size:
            taken[key] = [value[i] for i in keep.tolist()]
        elif isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
            taken[key] = value[keep.to(value.device)]
        else:
            taken[key] = value
    return taken
