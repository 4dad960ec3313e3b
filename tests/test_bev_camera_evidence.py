"""Camera evidence on the BEV map (the tiny config's): each cell holds the mean class scores
of its in-picture points, in the cell the point branch puts those points' voxels (x along the
map's width, y along its height), and the detector hands it to the head without training the
image classifier through it."""
import pytest
import torch

from _configs import built_model_and_batch, load, retarget

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
RANGE = [0, -25.6, -3, 51.2, 25.6, 1]


def evidence_module(pool_size=3):
    from gemini_det3d.detectors import BEVCameraEvidence
    return BEVCameraEvidence(RANGE, num_classes=3, pool_size=pool_size)


def test_cells_hold_the_mean_scores_of_their_in_picture_points():
    module = evidence_module()
    # map of 8 x 16 cells: 6.4 m along y (rows), 3.2 m along x (columns)
    points = torch.tensor([
        [10.0, 1.0, 0.0, 0.5],    # x 10 -> col 3, y 1 -> row 4
        [10.5, 1.5, -1.0, 0.1],   # same cell
        [10.2, 1.2, 0.0, 0.0],    # same cell, outside the picture (zero scores)
        [40.0, -20.0, 0.0, 0.0],  # col 12, row 0
        [60.0, 0.0, 0.0, 0.0],    # beyond x_max: no cell
    ])
    scores = torch.tensor([
        [0.1, 0.7, 0.1, 0.1],
        [0.3, 0.5, 0.1, 0.1],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ])
    out = module([points], [scores], (8, 16))
    assert out.shape == (1, module.out_channels, 8, 16) == (1, 8, 8, 16)
    torch.testing.assert_close(out[0, :4, 4, 3], torch.tensor([0.2, 0.6, 0.1, 0.1]))
    torch.testing.assert_close(out[0, :4, 0, 12], torch.tensor([0.0, 0.0, 1.0, 0.0]))
    occupied = out[0, 4]
    assert occupied[4, 3] == 1 and occupied[0, 12] == 1 and occupied.sum() == 2
    # nothing else anywhere in the cell channels (the far point and the zero-score point left out)
    assert out[0, :5].abs().sum() == pytest.approx(1 + 1 + 1 + 1)
    # pooled class channels: the largest cell mean over 3 x 3 cells, per class
    car_pooled = out[0, 5]
    assert car_pooled[3:6, 2:5].eq(0.6).all() and car_pooled.sum() == pytest.approx(0.6 * 9)
    ped_pooled = out[0, 6]
    assert ped_pooled[0:2, 11:14].eq(1.0).all() and ped_pooled[4, 3] == pytest.approx(0.1)


def test_a_cell_is_where_the_point_branch_puts_the_points_voxels():
    """A point's evidence lands in the BEV cell its voxel feeds: the tiny config's voxel grid
    (0.2 m) downsampled to the head's map (0.4 m)."""
    from mmcv.ops import Voxelization
    cfg = load(TINY)
    layer = cfg.model.data_preprocessor.voxel_layer
    voxelize = Voxelization(voxel_size=layer.voxel_size, point_cloud_range=layer.point_cloud_range,
                            max_num_points=1, max_voxels=100000)
    torch.manual_seed(0)
    points = torch.rand(2000, 4) * torch.tensor([51.2, 51.2, 4, 1]) - torch.tensor([0, 25.6, 3, 0])
    _, coors, _ = voxelize(points)  # [M, 3] (z, y, x) voxel indices
    h, w = 128, 128  # 256 x 256 voxels, stride 2
    want = torch.zeros(h, w)
    want[coors[:, 1] // 2, coors[:, 2] // 2] = 1
    scores = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(len(points), 1)
    occupied = evidence_module(pool_size=1)([points], [scores], (h, w))[0, 4]
    assert torch.equal(occupied, want)


@pytest.fixture(scope='module')
def model_and_data(converted_synthetic_kitti):
    model, batch = built_model_and_batch(retarget(load(TINY), converted_synthetic_kitti))
    return model, model.data_preprocessor(batch, training=True)


def test_the_head_reads_the_evidence_and_the_classifier_is_not_trained_by_it(model_and_data):
    model, data = model_and_data
    metas = [s.metainfo for s in data['data_samples']]
    img_feats, pts_feats = model.extract_feat(data['inputs'], metas)
    bev = pts_feats[0]
    k = model.bev_camera_evidence.out_channels
    assert bev.shape[1] == model.pts_bbox_head.in_channels == 128 + k
    evidence = bev[:, -k:]
    # each frame's own scores: the cells with points of each frame differ, and a frame's
    # occupied in-picture cells hold scores that sum to one
    occupied = evidence[:, 4] > 0
    assert occupied[0].sum() > 50 and not torch.equal(occupied[0], occupied[1])
    torch.testing.assert_close(evidence[:, :4].sum(1)[occupied],
                               torch.ones(int(occupied.sum())))
    losses = model(**data, mode='loss')
    model.zero_grad()
    sum(sum(losses[key]) for key in ('loss_cls', 'loss_bbox')).backward()
    assert model.pts_bbox_head.conv_cls.weight.grad[:, -k:].abs().sum() > 0
    grad = model.img_point_loss.classifier.weight.grad
    assert grad is None or grad.abs().sum() == 0


def test_the_evidence_follows_the_picture(model_and_data):
    """Another frame's camera picture (its LiDAR image, points and calibration its own, as in
    tools/probe_camera.py's swap) changes the evidence; the points' cells stay."""
    model, data = model_and_data
    model.eval()
    try:
        inputs = dict(data['inputs'])
        metas = [s.metainfo for s in data['data_samples']]
        with torch.no_grad():
            own = model.extract_feat(inputs, metas)[1][0][:, -8:]
            # the stacked image: RGB first, then the LiDAR image's channels
            imgs = inputs['imgs'].clone()
            imgs[:, :3] = imgs[:, :3].flip(0)  # each frame gets the other's picture
            inputs['imgs'] = imgs
            swapped = model.extract_feat(inputs, metas)[1][0][:, -8:]
    finally:
        model.train()
    torch.testing.assert_close(own[:, 4], swapped[:, 4])
    assert (own[:, :4] - swapped[:, :4]).abs().max() > 1e-3


def test_evidence_needs_the_image_classifier(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    cfg = retarget(load(TINY), converted_synthetic_kitti)
    cfg.model.img_point_loss = None
    with pytest.raises(ValueError, match='bev_camera_evidence needs img_point_loss'):
        MODELS.build(cfg.model)


def test_pool_size_must_be_odd():
    from gemini_det3d.detectors import BEVCameraEvidence
    with pytest.raises(ValueError, match='pool_size'):
        BEVCameraEvidence(RANGE, pool_size=4)
