"""mmdet3d's kitti_eval runs on CPU (compat rotated IoU) and scores ground truth as 100 AP."""
import numpy as np
import pytest

import gemini_det3d  # noqa: F401

CLASSES = ['Car', 'Pedestrian', 'Cyclist']
SIZES = {'Car': (1.56, 1.6, 3.9), 'Pedestrian': (1.73, 0.6, 0.8), 'Cyclist': (1.73, 0.6, 1.76)}


def _frames(num_frames=12, per_class=5, seed=0):
    """KITTI annos (camera frame) with num_frames * per_class boxes per class, well apart."""
    rng = np.random.default_rng(seed)
    annos = []
    for _ in range(num_frames):
        names, dims, locs, rots, bboxes = [], [], [], [], []
        slots = rng.permutation(len(CLASSES) * per_class)
        for k, slot in enumerate(slots):
            name = CLASSES[k % len(CLASSES)]
            h, w, l = SIZES[name]
            # a grid of slots 6 m apart so no two objects overlap
            x, z = -20 + 6 * (slot % 7), 8 + 6 * (slot // 7)
            names.append(name)
            dims.append([l, h, w])  # KITTI annos store dimensions as l, h, w
            locs.append([x, 1.7, z])
            rots.append(rng.uniform(-np.pi, np.pi))
            u = 600 + 40 * (slot % 7) + 2 * (slot // 7) * 100
            v = 120 + 3 * (slot // 7)
            bboxes.append([u, v, u + 30, v + 60])  # 60 px tall: "easy"
        n = len(names)
        annos.append(dict(
            name=np.array(names), truncated=np.zeros(n), occluded=np.zeros(n, dtype=int),
            alpha=np.zeros(n), bbox=np.array(bboxes, dtype=float),
            dimensions=np.array(dims, dtype=float), location=np.array(locs, dtype=float),
            rotation_y=np.array(rots, dtype=float), score=np.ones(n)))
    return annos


def _predictions(gt_annos, shift_x=0.0, seed=1):
    rng = np.random.default_rng(seed)
    preds = []
    for anno in gt_annos:
        p = {k: v.copy() for k, v in anno.items()}
        p['location'][:, 0] += shift_x
        p['score'] = rng.uniform(0.5, 1.0, len(p['name']))
        preds.append(p)
    return preds


@pytest.fixture(scope='module')
def gt_annos():
    annos = _frames()
    counts = {c: sum(int((a['name'] == c).sum()) for a in annos) for c in CLASSES}
    assert min(counts.values()) >= 50, counts
    return annos


def test_kitti_eval_ground_truth_as_predictions_scores_100(gt_annos):
    from mmdet3d.evaluation import kitti_eval
    _, ret = kitti_eval(gt_annos, _predictions(gt_annos), CLASSES, eval_types=['bbox', 'bev', '3d'])
    checked = 0
    for cls in CLASSES:
        for metric in ('2D', 'BEV', '3D'):
            for ap in ('AP11', 'AP40'):
                for diff in ('easy', 'moderate', 'hard'):
                    key = f'KITTI/{cls}_{metric}_{ap}_{diff}_strict'
                    assert ret[key] == pytest.approx(100.0, abs=1e-3), (key, ret[key])
                    checked += 1
    assert checked == 54


def test_kitti_eval_shifted_predictions_score_lower(gt_annos):
    from mmdet3d.evaluation import kitti_eval
    _, ret = kitti_eval(gt_annos, _predictions(gt_annos, shift_x=2.0), CLASSES,
                        eval_types=['bbox', 'bev', '3d'])
    for cls in CLASSES:
        for metric in ('BEV', '3D'):
            key = f'KITTI/{cls}_{metric}_AP40_moderate_strict'
            assert ret[key] < 50.0, (key, ret[key])
        # the 2D boxes were not moved: the image-plane metric is unaffected
        assert ret[f'KITTI/{cls}_2D_AP40_moderate_strict'] == pytest.approx(100.0, abs=1e-3)


def test_kitti_eval_partial_overlap_is_between():
    """A 0.5 m shift keeps Cars above IoU 0.7 in BEV only sometimes: AP strictly between."""
    from mmdet3d.evaluation import kitti_eval
    gt = _frames(seed=3)
    _, ret = kitti_eval(gt, _predictions(gt, shift_x=0.45), ['Car'], eval_types=['bbox', 'bev', '3d'])
    key = 'KITTI/Car_BEV_AP40_moderate_strict'
    assert 0.0 < ret[key] < 100.0, ret[key]
