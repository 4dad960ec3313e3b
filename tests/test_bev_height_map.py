"""BEVHeightMap: per-cell height statistics of the raw points, stacked onto SECOND's input."""
import math

import pytest
import torch

import gemini_det3d  # noqa: F401
from gemini_det3d.detectors import BEVHeightMap

RANGE = [0, -1.6, -3, 3.2, 1.6, 1]  # 32 x 32 voxels of 0.1 m, 20 of 0.2 m in z
VOXEL = [0.1, 0.1, 0.2]


def _voxel(points, sample, max_points=3):
    """One hard voxel holding ``points`` (list of (x, y, z)), zero-padded to max_points."""
    x, y, z = points[0]
    coor = [sample, int((z - RANGE[2]) / VOXEL[2]), int((y - RANGE[1]) / VOXEL[1]),
            int((x - RANGE[0]) / VOXEL[0])]
    rows = [[px, py, pz, 0.5] for px, py, pz in points] + [[0.0, 0.0, 0.0, 0.0]] * (max_points - len(points))
    return rows, coor, len(points)


def _batch(voxel_list):
    rows, coors, counts = zip(*voxel_list)
    return (torch.tensor(rows, dtype=torch.float32), torch.tensor(counts),
            torch.tensor(coors, dtype=torch.int32))


def test_cells_hold_top_bottom_occupancy_and_density():
    hm = BEVHeightMap(RANGE, VOXEL, downsample=4, max_num_points=3)
    # sample 0: a "car" cell (x 1.2-1.6, y -0.4-0): roof point at -0.3, ground at -1.7
    # (two voxels of the same 0.4 m cell); sample 1: one point elsewhere.
    voxels, num_points, coors = _batch([
        _voxel([(1.25, -0.35, -0.3), (1.26, -0.34, -0.31)], 0),
        _voxel([(1.55, -0.05, -1.7)], 0),
        _voxel([(0.05, 1.55, 0.5)], 1),
    ])
    out = hm(voxels, num_points, coors, batch_size=2)
    assert out.shape == (2, 4, 8, 8)
    # cell of sample 0: y index (-0.35 + 1.6) / 0.4 = 3, x index 1.25 / 0.4 = 3
    occupied, top, bottom, density = out[0, :, 3, 3]
    assert occupied == 1
    assert top * 4 - 3 == pytest.approx(-0.3, abs=1e-5)  # the padding zeros (z 0) are not points
    assert bottom * 4 - 3 == pytest.approx(-1.7, abs=1e-5)
    voxels_per_cell = 4 * 4 * 20
    assert density == pytest.approx(math.log1p(3) / math.log1p(voxels_per_cell * 3))
    # exactly one occupied cell per sample, and nothing of sample 0 leaks into sample 1
    assert out[:, 0].sum((1, 2)).tolist() == [1.0, 1.0]
    assert out[1, 0, 7, 0] == 1 and out[1, 1, 7, 0] * 4 - 3 == pytest.approx(0.5, abs=1e-5)
    assert out[0, 1:].abs().sum() == pytest.approx((top + bottom + density).item())


def test_heights_outside_the_range_are_clamped():
    hm = BEVHeightMap(RANGE, VOXEL, downsample=4, max_num_points=3)
    voxels, num_points, coors = _batch([_voxel([(0.1, 0.1, -2.9)], 0)])
    voxels[0, 0, 2] = 5.0  # e.g. a point pushed up by augmentation after voxelisation
    out = hm(voxels, num_points, coors, batch_size=1)
    assert out[0, 1].max() == 1.0 and out[0, 2].max() == 1.0


def test_bad_downsample_is_rejected():
    with pytest.raises(ValueError, match='downsample'):
        BEVHeightMap(RANGE, VOXEL, downsample=0)


def test_detector_stacks_the_map_onto_the_sparse_encoders_output():
    """The detector's point branch hands SECOND the sparse features plus the 4 map channels."""
    from mmdet3d.registry import MODELS
    sparse = dict(type='SparseEncoder', in_channels=4, sparse_shape=[20, 32, 32], base_channels=8,
                  output_channels=16, encoder_channels=((8, ), (16, 16), (16, 16)),
                  encoder_paddings=((1, ), (1, 1), (1, 1)), order=('conv', 'norm', 'act'))
    seen = {}
    model = MODELS.build(dict(
        type='EmptyScanSafeMVXFasterRCNN',
        pts_voxel_encoder=dict(type='HardSimpleVFE', num_features=4),
        pts_middle_encoder=sparse,
        pts_height_map=dict(type='BEVHeightMap', point_cloud_range=RANGE, voxel_size=VOXEL,
                            downsample=4, max_num_points=3),
        pts_backbone=dict(type='SECOND', in_channels=16 * 2 + 4, layer_nums=[1], layer_strides=[1],
                          out_channels=[8])))
    model.pts_bbox_head = torch.nn.Identity()  # a head makes the point branch run; not called here
    model.pts_backbone.register_forward_pre_hook(lambda m, inputs: seen.setdefault('x', inputs[0]))
    voxels, num_points, coors = _batch([_voxel([(1.25, -0.35, -0.3)], 0), _voxel([(0.05, 1.55, 0.5)], 1)])
    model.extract_pts_feat(dict(voxels=voxels, num_points=num_points, coors=coors))
    x = seen['x']
    assert x.shape == (2, 16 * 2 + 4, 8, 8)
    assert torch.equal(x[:, -4:], model.pts_height_map(voxels, num_points, coors, 2))
    # without the key the point branch is mmdet3d's own: SECOND sees the sparse features only
    model.pts_height_map = None
    model.pts_backbone = MODELS.build(dict(type='SECOND', in_channels=16 * 2, layer_nums=[1],
                                           layer_strides=[1], out_channels=[8]))
    model.pts_backbone.register_forward_pre_hook(lambda m, inputs: seen.__setitem__('x', inputs[0]))
    model.extract_pts_feat(dict(voxels=voxels, num_points=num_points, coors=coors))
    assert seen['x'].shape == (2, 16 * 2, 8, 8)
