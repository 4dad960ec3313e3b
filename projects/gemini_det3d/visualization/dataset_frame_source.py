"""Frames of a config's data set: scan, image and ground truth from the infos, predictions
from a results file or from a checkpoint run through the config's test pipeline."""
import copy
from typing import Iterator, Optional

import numpy as np

from ..data import kitti_io
from ..errors import GeminiInputError
from .box_geometry import as_box_array
from .frame import VisFrame
from .kitti_frame_source import read_image_bgr
from .prediction_source import PredictionSource, frame_name_of

SPLITS = ('train', 'val', 'test')


def innermost_dataset_cfg(dataset_cfg):
    """Unwrap ``RepeatDataset`` / ``CBGSDataset``-style wrappers."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def build_split_dataset(cfg, split: str):
    """The split's dataset with the config's TEST pipeline (no augmentation), in test mode
    but still parsing annotations (``load_eval_anns``)."""
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if split not in SPLITS:
        raise GeminiInputError(f'--split must be one of {SPLITS}, got {split!r}')
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise GeminiInputError(f'the config has no {split}_dataloader')
    dataset_cfg = copy.deepcopy(innermost_dataset_cfg(loader['dataset']))
    dataset_cfg['pipeline'] = copy.deepcopy(
        innermost_dataset_cfg(cfg.test_dataloader['dataset'])['pipeline'])
    dataset_cfg['test_mode'] = True
    try:
        return DATASETS.build(dataset_cfg)
    except FileNotFoundError as exc:
        raise GeminiInputError(f'{split} data set: {exc}'.splitlines()[0]) from None


def bev_range_of(cfg):
    """(x_min, y_min, x_max, y_max) from the config's ``point_cloud_range``, if it has one."""
    pcr = cfg.get('point_cloud_range')
    return None if pcr is None else (pcr[0], pcr[1], pcr[3], pcr[4])


def _read_points(info) -> np.ndarray:
    path = info['lidar_points']['lidar_path']
    dims = int(info['lidar_points'].get('num_pts_feats', 4))
    if dims == 4:
        return kitti_io.read_velodyne(path)
    points = np.fromfile(path, dtype=np.float32)
    if points.size == 0 or points.size % dims:
        raise GeminiInputError(f'{path}: not a float32 point file with {dims} values per point')
    return points.reshape(-1, dims)[:, :4]


def _ground_truth(dataset, info):
    ann = info.get('ann_info') or info.get('eval_ann_info')
    if ann is None and info.get('instances'):
        ann = dataset.parse_ann_info(info)
    return None if ann is None else ann.get('gt_bboxes_3d')


class CheckpointPredictor:
    """Runs a checkpoint on dataset samples (test pipeline) and returns LiDAR boxes."""

    def __init__(self, cfg, checkpoint, device='cpu'):
        # weights of another model are an error here (mmdet3d's init_model only warns)
        from ..apis.inference import init_checked_model
        self.model = init_checked_model(cfg, checkpoint, device=device)

    def __call__(self, sample: dict):
        import torch
        from mmengine.dataset import pseudo_collate
        with torch.no_grad():
            pred = self.model.test_step(pseudo_collate([sample]))[0].pred_instances_3d
        return pred.bboxes_3d, pred.scores_3d.cpu().numpy()


class DatasetFrames:
    """The first ``num`` samples of a split as :class:`VisFrame` (iterable, with a length).

    Args:
        cfg (mmengine.Config): the model / data config.
        split: ``'train'``, ``'val'`` or ``'test'`` (its ``{split}_dataloader``).
        results: ``.pkl`` of dumped results or a folder of KITTI label files (optional).
        checkpoint: run this checkpoint instead (optional; ignored if ``results`` is given).
        score_thr: predictions below this score are not drawn.
    """

    def __init__(self, cfg, split: str = 'val', results=None, checkpoint=None,
                 num: Optional[int] = None, score_thr: float = 0.3, device: str = 'cpu'):
        self.dataset = build_split_dataset(cfg, split)
        self.predictions = PredictionSource(results, score_thr) if results else None
        self.predictor = (CheckpointPredictor(cfg, checkpoint, device)
                          if checkpoint and not results else None)
        self.score_thr = score_thr
        self.count = len(self.dataset) if num is None else min(num, len(self.dataset))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[VisFrame]:
        for position in range(self.count):
            yield self.frame(position)

    def frame(self, position: int) -> VisFrame:
        info = self.dataset.get_data_info(position)
        name = frame_name_of(info['lidar_points']['lidar_path'])
        pred_boxes, pred_scores = None, ()
        if self.predictions is not None:
            pred_boxes, pred_scores = self.predictions.get(name, position, info.get('lidar2cam'))
        elif self.predictor is not None:
            boxes, scores = self.predictor(self.dataset[position])
            keep = scores >= self.score_thr
            pred_boxes, pred_scores = as_box_array(boxes)[keep], scores[keep]
        image = read_image_bgr(info['img_path']) if info.get('img_path') else None
        return VisFrame(name=name, points=_read_points(info), image_bgr=image,
                        lidar2img=info.get('lidar2img'),
                        gt_boxes=_ground_truth(self.dataset, info),
                        pred_boxes=pred_boxes, pred_scores=pred_scores)
