"""``GeminiMVXFasterRCNN``: mmdet3d's MVXFasterRCNN as this project uses it.

Hard or dynamic voxels: ``extract_pts_feat`` is ``MVXFasterRCNN``'s for hard voxels and
``DynamicMVXFasterRCNN``'s for dynamic ones (told apart by the voxel dict: only hard voxels
carry ``num_points``), so one class serves ``Det3DDataPreprocessor``'s ``voxel_type='hard'``
(with ``HardVFE``) and ``'dynamic'`` (with ``DynamicVFE``, as mmdet3d's MVX-Net).

Seven things on top of mmdet3d's MVX detector:

* **The image backbone's own losses.** Fusion modules may add a loss of their own (TokenFusion's
  L1 sparsity loss on its token scores); ``loss`` adds the backbone's
  ``pop_auxiliary_losses()`` to the head's, since mmdet3d's MVX detector only knows the head's.
* **Frames without points.** A frame whose scan puts no point into the voxel grid (a 0-byte
  ``.bin``, a LiDAR dropout, every point outside ``point_cloud_range``) has zero voxels, and
  mmdet3d's MVX path breaks on it: ``extract_pts_feat`` and ``HardVFE.fusion_with_mask`` take
  the batch size from the last voxel's sample index (an ``IndexError``, or one sample too few),
  spconv fails on zero voxels, and an empty sample in the middle of a batch gets boxes predicted
  from an all-zero BEV map (biases alone). With dynamic voxels a point outside the grid has
  voxel coordinates -1 but keeps its sample index, so a sample counts as empty when none of
  its points has valid coordinates. So empty samples leave the batch before the model sees
  it: in ``predict`` an empty sample gets an empty prediction (eval mode, so the other samples'
  results do not depend on it); in ``loss`` it contributes nothing, and a batch of only empty
  samples gives zero losses that still reach every trainable parameter (DDP's reduction and the
  logs go on as usual).
* **An optional box post-processor** ``ground_refiner`` (e.g.
  ``dict(type='GroundContactRefiner')``, see ``ground_contact.py``): each frame's predicted boxes
  get their bottoms moved onto the ground measured in that frame's scan, after decoding and NMS.
* **An optional image-branch loss** ``img_point_loss`` (e.g.
  ``dict(type='PointImageSemanticLoss', in_channels=...)``, see
  ``point_image_semantic_loss.py``): the image features PointFusion samples at each LiDAR
  point are asked for the point's class, so the image branch learns what the camera shows
  there instead of being left to the 3D head's gradient alone. Training only.
* **Optional point painting** ``paint_points=True`` (with ``img_point_loss``; see
  ``point_painting.py``): that loss's classifier scores every point the voxel encoder reads,
  and its K + 1 class scores are appended to the point's channels (PointPainting), so the
  voxel encoder's ``in_channels`` is the points' channels + K + 1.
* **Optional camera evidence on the BEV map** ``bev_camera_evidence`` (e.g.
  ``dict(type='BEVCameraEvidence', point_cloud_range=...)``, with ``img_point_loss``; see
  ``bev_camera_evidence.py``): that loss's classifier scores every point, and the scores,
  averaged per BEV cell, are concatenated to the map the 3D head reads (late fusion, as CLOCs),
  so the head's ``in_channels`` grows by the module's ``out_channels``.
* **The point branch from another detector's checkpoint** ``pts_pretrained`` (a path or URL of
  an mmdet3d MVX-Net / SECOND KITTI checkpoint): after ``init_weights``, its ``pts_*`` tensors
  that this model has with the same shape are loaded, the rest is listed in one log line
  (``gemini_det3d.utils.partial_checkpoint``).
"""
from typing import Dict, List, Optional

import torch
from mmdet3d.models.detectors import DynamicMVXFasterRCNN, MVXFasterRCNN
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
from mmengine.structures import InstanceData
from torch import Tensor

from ..utils.partial_checkpoint import load_matching_tensors
from .point_painting import paint_dynamic_points, paint_hard_voxels, point_class_scores

# Anchor3DHead's loss keys: an all-empty batch reports the same columns in the training log.
_HEAD_LOSS_KEYS = ('loss_cls', 'loss_bbox', 'loss_dir')


@MODELS.register_module()
class GeminiMVXFasterRCNN(MVXFasterRCNN):
    """mmdet3d's MVXFasterRCNN (hard or dynamic voxels) plus the image backbone's losses,
    frames without points, an optional box post-processor and an optional point-branch
    checkpoint (module docstring).

    Args:
        ground_refiner (dict, optional): a module config such as ``GroundContactRefiner``'s,
            applied to each frame's predicted boxes with its points.
        pts_pretrained (str, optional): checkpoint whose ``pts_*`` tensors that fit are
            loaded by ``init_weights``.
        Everything else: as ``MVXFasterRCNN``.
    """

    def __init__(self, *args, ground_refiner: Optional[dict] = None,
                 pts_pretrained: Optional[str] = None, img_point_loss: Optional[dict] = None,
                 paint_points: bool = False, bev_camera_evidence: Optional[dict] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.ground_refiner = MODELS.build(ground_refiner) if ground_refiner else None
        self.pts_pretrained = pts_pretrained
        self.img_point_loss = MODELS.build(img_point_loss) if img_point_loss else None
        if self.img_point_loss is not None and getattr(
                getattr(self, 'pts_voxel_encoder', None), 'fusion_layer', None) is None:
            raise ValueError('img_point_loss needs an image branch and a voxel encoder with a '
                             'fusion_layer (PointFusion): its image features are the ones sampled')
        if paint_points and self.img_point_loss is None:
            raise ValueError('paint_points needs img_point_loss: its classifier gives the '
                             'scores the points are painted with')
        self.paint_points = paint_points
        if bev_camera_evidence and self.img_point_loss is None:
            raise ValueError('bev_camera_evidence needs img_point_loss: its classifier gives the '
                             'scores laid on the BEV map')
        self.bev_camera_evidence = (MODELS.build(bev_camera_evidence) if bev_camera_evidence
                                    else None)
        self._img_point_inputs = None  # (img_feats, points, metas) of the last training forward
        self._head_samples = []  # the data samples that forward saw

    def init_weights(self) -> None:
        super().init_weights()
        if self.pts_pretrained:
            load_matching_tensors(self, self.pts_pretrained, prefix='pts_')

    def extract_feat(self, batch_inputs_dict: dict, batch_input_metas: List[dict]):
        """mmdet3d's; in training with ``img_point_loss`` the image features, points and metas
        are kept for that loss (the same forward's, not a second image pass)."""
        img_feats, pts_feats = super().extract_feat(batch_inputs_dict, batch_input_metas)
        if self.bev_camera_evidence is not None and pts_feats is not None:
            pts_feats = self._with_camera_evidence(pts_feats, img_feats,
                                                   batch_inputs_dict['points'], batch_input_metas)
        if self.training and self.img_point_loss is not None and img_feats is not None:
            self._img_point_inputs = (img_feats, batch_inputs_dict['points'], batch_input_metas)
        return img_feats, pts_feats

    def _with_camera_evidence(self, pts_feats: List[Tensor], img_feats, points: List[Tensor],
                              metas: List[dict]) -> List[Tensor]:
        """``pts_feats`` with the first (the head's) ``[B, C, H, W]`` map widened to
        ``C + out_channels`` by ``bev_camera_evidence``."""
        if img_feats is None:
            raise ValueError('bev_camera_evidence needs the image branch\'s features '
                             '(no image input?)')
        scores = point_class_scores(self.pts_voxel_encoder.fusion_layer,
                                    self.img_point_loss.classifier, img_feats, points, metas)
        bev = pts_feats[0]
        evidence = self.bev_camera_evidence(points, scores, bev.shape[-2:]).to(bev.dtype)
        return [torch.cat([bev, evidence], 1)] + list(pts_feats[1:])

    def extract_pts_feat(self, voxel_dict: Dict[str, Tensor], *args, **kwargs):
        """Point-branch features: mmdet3d's hard-voxel path, or its dynamic-voxel path when the
        voxel dict holds points and their voxel coordinates (no ``num_points``)."""
        if self.paint_points:
            voxel_dict = self._painted(voxel_dict, *args, **kwargs)
        if 'num_points' in voxel_dict:
            return super().extract_pts_feat(voxel_dict, *args, **kwargs)
        return DynamicMVXFasterRCNN.extract_pts_feat(self, voxel_dict, *args, **kwargs)

    def _painted(self, voxel_dict: Dict[str, Tensor], points=None, img_feats=None,
                 batch_input_metas=None) -> Dict[str, Tensor]:
        """The voxel dict with each point's image class scores appended to its channels."""
        if img_feats is None:
            raise ValueError('paint_points needs the image branch\'s features (no image input?)')
        args = (voxel_dict['coors'], len(batch_input_metas), self.pts_voxel_encoder.fusion_layer,
                self.img_point_loss.classifier, img_feats, batch_input_metas)
        painted = dict(voxel_dict)
        if 'num_points' in voxel_dict:
            painted['voxels'] = paint_hard_voxels(voxel_dict['voxels'], voxel_dict['num_points'],
                                                  *args)
        else:
            painted['voxels'] = paint_dynamic_points(voxel_dict['voxels'], *args)
        return painted

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
        self._img_point_inputs = None
        losses = self._head_loss(batch_inputs_dict, batch_data_samples, **kwargs)
        if self.img_point_loss is not None:
            losses.update(self._image_point_loss(batch_data_samples))
        pop_backbone_losses = getattr(getattr(self, 'img_backbone', None),
                                      'pop_auxiliary_losses', None)
        if pop_backbone_losses is not None:
            losses.update(pop_backbone_losses())
        return losses

    def _image_point_loss(self, batch_data_samples: List[Det3DDataSample]) -> Dict[str, Tensor]:
        """``img_point_loss`` on the samples the head saw (those with points); a zero that
        reaches every trainable parameter when none had points (as the head's losses)."""
        if self._img_point_inputs is None:
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {'loss_img_point_sem': zero}
        img_feats, points, metas = self._img_point_inputs
        self._img_point_inputs = None
        gt = [s.gt_instances_3d for s in self._head_samples]  # the forward's samples, in order
        return self.img_point_loss(self.pts_voxel_encoder.fusion_layer, img_feats, points, metas,
                                   [g.bboxes_3d.tensor for g in gt], [g.labels_3d for g in gt])

    def _head_loss(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
                   **kwargs) -> Dict[str, Tensor]:
        keep = self._samples_with_points(batch_inputs_dict, len(batch_data_samples))
        if len(keep) == len(batch_data_samples):
            self._head_samples = batch_data_samples
            return super().loss(batch_inputs_dict, batch_data_samples, **kwargs)
        if len(keep):
            self._head_samples = [batch_data_samples[i] for i in keep.tolist()]
            return super().loss(take_samples(batch_inputs_dict, keep, len(batch_data_samples)),
                                self._head_samples, **kwargs)
        # 0 * (sum of every trainable parameter): a zero loss with a (zero) gradient for each
        zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        return {key: zero for key in _HEAD_LOSS_KEYS}

    def _samples_with_points(self, batch_inputs_dict: dict, batch_size: int) -> Tensor:
        """[K] long: indices of the samples that have at least one voxel (or point) in the
        grid; a dynamic voxel row with a negative coordinate is a point outside it."""
        voxels = batch_inputs_dict.get('voxels')
        if voxels is not None:
            coors = voxels['coors']
            inside = coors[(coors >= 0).all(dim=1), 0]
            counts = torch.bincount(inside.long(), minlength=batch_size)
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
            [N_i, C] tensors), ``imgs`` ([B, C, H, W]) and ``voxels``: hard voxels
            (``voxels`` [M, P, C], ``coors`` [M, 4] with the sample index in column 0,
            ``num_points`` [M], ``voxel_centers`` [M, 3]) or dynamic ones (``voxels`` [N, C] the
            points of all samples in order, ``coors`` [N, 4], -1 outside the grid).
        keep (Tensor): [K] long, ascending sample indices.
        batch_size (int): B.
    """
    taken = {}
    for key, value in batch_inputs_dict.items():
        if key == 'voxels':
            # rows of the samples left out go (with dynamic voxels, their points outside the
            # grid: DynamicVFE's PointFusion pairs every row with a point of ``points``); the
            # kept rows get the new sample index
            new_index = torch.full((batch_size, ), -1, dtype=torch.long)
            new_index[keep] = torch.arange(len(keep))
            sample = new_index.to(value['coors'].device)[value['coors'][:, 0].long()]
            rows = sample >= 0
            num_rows = len(rows)
            taken[key] = {k: v[rows] if isinstance(v, Tensor) and v.dim() and len(v) == num_rows
                          else v for k, v in value.items()}
            taken[key]['coors'][:, 0] = sample[rows].to(value['coors'].dtype)
        elif isinstance(value, (list, tuple)) and len(value) == batch_size:
            taken[key] = [value[i] for i in keep.tolist()]
        elif isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
            taken[key] = value[keep.to(value.device)]
        else:
            taken[key] = value
    return taken
