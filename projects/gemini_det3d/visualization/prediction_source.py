"""Predictions for the pictures: a results ``.pkl`` or a folder of KITTI label files.

The ``.pkl`` is what ``tools/test.py --out`` (mmengine's ``DumpResults``) writes: a list with
one dict per sample, holding ``pred_instances_3d`` (``bboxes_3d``: LiDAR boxes, ``scores_3d``,
``labels_3d``) and the sample's metainfo (``lidar_path``, ...). A folder holds one KITTI
label ``.txt`` per frame (``tools/test.py --submission-dir``, ``tools/infer.py --out``).
"""
import os.path as osp
import pickle
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import GeminiInputError
from .box_geometry import as_box_array
from .kitti_frame_source import read_kitti_predictions


def frame_name_of(path: str) -> str:
    """``.../velodyne_reduced/000003.bin`` -> ``'000003'``."""
    return osp.splitext(osp.basename(str(path)))[0]


class PredictionSource:
    """Look up a frame's predicted boxes by frame name (or by position in the results list).

    Args:
        results: a ``.pkl`` of dumped results or a folder of KITTI label files.
        score_thr: boxes below this score are left out.
    """

    def __init__(self, results, score_thr: float = 0.0):
        self.path = Path(results)
        self.score_thr = score_thr
        self.by_name, self.by_position = {}, []
        self.unmatched = []  # frames asked for that the results do not hold
        if self.path.is_dir():
            self.kind = 'kitti_dir'
        elif self.path.is_file():
            self.kind = 'pkl'
            self._load_pkl()
        else:
            raise GeminiInputError(f'{self.path}: results file or folder not found')

    def _load_pkl(self):
        try:
            with open(self.path, 'rb') as f:
                results = pickle.load(f)
        except Exception as exc:  # noqa: BLE001  (truncated file, not a pickle, ...)
            raise GeminiInputError(f'{self.path}: cannot read the results pickle '
                                   f'({type(exc).__name__}: {exc})'.splitlines()[0]) from None
        if isinstance(results, dict) and 'results' in results:
            results = results['results']
        if not isinstance(results, (list, tuple)) or not all(
                isinstance(r, dict) and 'pred_instances_3d' in r for r in results):
            raise GeminiInputError(f'{self.path}: expected a list of dicts with '
                                   '"pred_instances_3d" (tools/test.py --out writes one)')
        for result in results:
            pred = result['pred_instances_3d']
            entry = (as_box_array(pred.get('bboxes_3d')),
                     _as_numpy(pred.get('scores_3d', np.ones(0))))
            self.by_position.append(entry)
            if result.get('lidar_path'):
                self.by_name[frame_name_of(result['lidar_path'])] = entry

    def get(self, name: str, position: int,
            lidar2cam: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Boxes [K, 7] and scores [K] of frame ``name`` (sample ``position`` of the split)."""
        if self.kind == 'kitti_dir':
            boxes, scores = read_kitti_predictions(self.path, name, lidar2cam, self.score_thr)
            return as_box_array(boxes), np.asarray(scores, dtype=np.float64)
        if name in self.by_name:
            boxes, scores = self.by_name[name]
        elif not self.by_name and position < len(self.by_position):
            boxes, scores = self.by_position[position]
        else:
            self.unmatched.append(name)
            return np.zeros((0, 7)), np.zeros(0)
        if len(scores) != len(boxes):
            scores = np.ones(len(boxes))
        keep = scores >= self.score_thr
        return boxes[keep], scores[keep]


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, 'detach'):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)
