"""A test aid: a "detector" that returns each frame's ground truth (the metric-wiring check).

:func:`oracle_config` writes a config that is a project config with this model, so that
``tools/test.py`` (run with :func:`oracle_env`, no checkpoint: the model has no weights)
runs the real data pipeline, evaluator and submission writer on the answers themselves:
KITTI AP must come out at 100 (with >= ~50 boxes per class; fewer and KITTI's recall
sampling keeps it lower), and shifting the boxes by some metres must lower it.
"""
import os
import os.path as osp
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


TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))


def oracle_config(base_config: str, folder, shift: Sequence[float] = (0.0, 0.0, 0.0)) -> str:
    """Write ``folder/oracle.py``: ``base_config`` (a path) with this oracle as its model."""
    path = osp.join(str(folder), 'oracle.py')
    os.makedirs(str(folder), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.abspath(base_config)!r}]\n"
                "custom_imports = dict(imports=['gemini_det3d', 'helpers.ground_truth_oracle'],"
                " allow_failed_imports=False)\n"
                f"model = dict(_delete_=True, type='GroundTruthOracle', shift={tuple(shift)!r})\n")
    return path


def oracle_env() -> dict:
    """The environment for a tool run on :func:`oracle_config`: ``tests/`` importable."""
    paths = [TESTS] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
