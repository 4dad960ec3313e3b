"""Helpers to build mmdet3d's shipped configs and feed them synthetic inputs (tests only)."""
import os.path as osp

import numpy as np
import torch


def mmdet3d_config_path(rel: str) -> str:
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs', rel)
    assert osp.isfile(path), f'mmdet3d does not ship {rel}'
    return path


def random_scene(rng, num_points=8000, num_boxes=(4, 2, 2), pc_range=(0, -40, -3, 70.4, 40, 1)):
    """Points (N, 4) in the LiDAR frame with clusters inside boxes, and LiDAR boxes (M, 7)."""
    from mmdet3d.structures import LiDARInstance3DBoxes
    sizes = {0: (0.8, 0.6, 1.73), 1: (1.76, 0.6, 1.73), 2: (3.9, 1.6, 1.56)}  # Ped, Cyc, Car
    boxes, labels, pts = [], [], []
    for label, count in zip((2, 0, 1), num_boxes):
        for _ in range(count):
            l, w, h = sizes[label]
            x, y = rng.uniform(8, 40), rng.uniform(-15, 15)
            yaw = rng.uniform(-np.pi, np.pi)
            boxes.append([x, y, -1.7, l, w, h, yaw])
            labels.append(label)
            local = rng.uniform(-0.5, 0.5, (300, 3)) * [l, w, h] + [0, 0, h / 2]
            c, s = np.cos(yaw), np.sin(yaw)
            world = local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + [x, y, -1.7]
            pts.append(world)
    n_bg = num_points - sum(len(p) for p in pts)
    bg = np.column_stack([rng.uniform(pc_range[0], pc_range[3], n_bg),
                          rng.uniform(pc_range[1], pc_range[4], n_bg),
                          rng.uniform(-1.8, -1.6, n_bg)])
    xyz = np.concatenate(pts + [bg])
    points = np.column_stack([xyz, rng.uniform(0, 1, len(xyz))]).astype(np.float32)
    return (torch.from_numpy(points),
            LiDARInstance3DBoxes(torch.tensor(boxes, dtype=torch.float32)),
            torch.tensor(labels, dtype=torch.long))


def kitti_like_lidar2img():
    """A KITTI-like 4x4 lidar2img (P2 @ R0_rect @ Tr_velo_to_cam) for a 1242 x 375 image."""
    p2 = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.003]])
    tr = np.array([[0, -1, 0, 0], [0, 0, -1, -0.08], [1, 0, 0, -0.27], [0, 0, 0, 1.0]])
    return np.vstack([p2, [0, 0, 0, 1]]) @ tr
