"""A "detector" that returns each frame's ground truth: the metric-wiring check.

``tools/test.py CONFIG --gt-as-pred [SHIFT]`` swaps the config's model for this one, so
the real data pipeline, evaluator and submission writer run unchanged on the answers
themselves: KITTI AP must come out at 100 (with >= ~50 boxes per class; fewer and KITTI's
recall sampling keeps it lower), and shifting the boxes by SHIFT metres must lower it.
"""
from typing import List, Optional, Sequence

import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample
from mmengine.model import BaseModel
from mmengine.structures import InstanceData


@MODELS.register_module()
class GroundTruthOracle(BaseModel):
    """Predicts the ground-truth boxes of each sample (``data_sample.eval_ann_info``).

    Args:
        shift (Sequence[float]): metres added to every box centre (x, y, z), LiDAR frame.
        seed (int): seeds the scores (distinct per box so that KITTI's ranking has no ties).
        data_preprocessor (dict, optional): defaults to ``Det3DDataPreprocessor`` (no voxels).
    """

    def __init__(self, shift: Sequence[float] = (0.0, 0.0, 0.0), seed: int = 0,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='Det3DDataPreprocessor')
        super().__init__(data_preprocessor=MODELS.build(data_preprocessor), init_cfg=init_cfg)
        self.shift = torch.tensor(list(shift), dtype=torch.float32)
        self.generator = torch.Generator().manual_seed(seed)
        # a parameter so that the runner can build an optimiser / move the model
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs: dict, data_samples: List[Det3DDataSample], mode: str = 'predict'):
        if mode != 'predict':
            raise ValueError('GroundTruthOracle only predicts (it is an evaluation check)')
        for sample in data_samples:
            ann = getattr(sample, 'eval_ann_info', None)
            if ann is None:
                raise ValueError('GroundTruthOracle needs annotations: use a val split '
                                 '(test_mode data with eval_ann_info), not the test split')
            boxes, labels = ann['gt_bboxes_3d'], torch.as_tensor(ann['gt_labels_3d'])
            keep = labels >= 0  # -1: classes outside the config's class list
            boxes = boxes[keep].clone()
            boxes.translate(self.shift.to(boxes.tensor))
            scores = 0.5 + 0.5 * torch.rand(len(boxes), generator=self.generator)
            sample.pred_instances_3d = InstanceData(
                bboxes_3d=boxes, scores_3d=scores, labels_3d=labels[keep].long())
            sample.pred_instances = InstanceData()
        return data_samples
