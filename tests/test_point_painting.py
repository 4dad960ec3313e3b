"""Point painting: every point the voxel encoder reads carries the image classifier's class
scores at its own pixel, from its own frame's picture, and the 3D head's loss reaches the
voxel encoder through those channels but not the classifier (the scores are detached)."""
import pytest
import torch

from _configs import built_model_and_batch, load, retarget

PAINT = 'configs/gemini_det3d/tiny/geminifusion-paint-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


@pytest.fixture(scope='module')
def model_and_data(converted_synthetic_kitti):
    model, batch = built_model_and_batch(retarget(load(PAINT), converted_synthetic_kitti))
    data = model.data_preprocessor(batch, training=True)
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        img_feats = model.extract_img_feat(data['inputs']['imgs'], metas)
    return model, data, metas, img_feats


def direct_scores(model, img_feats, points, metas, i):
    """Sample ``i``'s scores computed alone: its own feature maps and meta, no batching."""
    fusion = model.pts_voxel_encoder.fusion_layer
    with torch.no_grad():
        feats = [f[i:i + 1] for f in img_feats]
        sampled = fusion.obtain_mlvl_feats(feats, [points], [metas[i]])
        return model.img_point_loss.classifier(sampled).softmax(-1)


def test_hard_voxels_carry_each_points_own_scores(model_and_data):
    model, data, metas, img_feats = model_and_data
    voxels = data['inputs']['voxels']
    painted = model._painted(voxels, img_feats=img_feats, batch_input_metas=metas)['voxels']
    m, p, c = voxels['voxels'].shape
    assert painted.shape == (m, p, c + 4)
    assert torch.equal(painted[..., :c], voxels['voxels'])  # the points themselves untouched
    valid = torch.arange(p)[None] < voxels['num_points'][:, None]
    assert (painted[..., c:][~valid] == 0).all()  # padding stays zero
    for i in range(2):
        rows = voxels['coors'][:, 0] == i
        points = voxels['voxels'][rows][valid[rows]]
        got = painted[rows][valid[rows]][:, c:]
        want = direct_scores(model, img_feats, points, metas, i)
        in_picture = got.sum(1) > 0.5
        # the synthetic scans hold the camera's view: nearly every point is in the picture,
        # and those carry exactly their own frame's scores (a distribution over 4 classes)
        assert in_picture.float().mean() > 0.9
        torch.testing.assert_close(got[in_picture], want[in_picture])
        torch.testing.assert_close(got[in_picture].sum(1), torch.ones(int(in_picture.sum())))
    # the two frames' pictures differ, so painting a frame from the other's would show
    other = direct_scores(model, img_feats, points, metas, 0)
    assert not torch.allclose(other[in_picture], want[in_picture])


def test_points_outside_the_picture_get_zeros(model_and_data):
    from gemini_det3d.detectors.point_painting import point_class_scores
    model, _, metas, img_feats = model_and_data
    inside = torch.tensor([[15.0, 0.0, -1.0, 0.5]])  # straight ahead of the camera
    # 76 degrees to the side; 63 degrees up (mmdet3d's point_sample, as PointFusion, does not
    # test the depth's sign: points behind the camera are cut by point_cloud_range, x >= 0)
    outside = torch.tensor([[5.0, 20.0, -1.0, 0.5], [5.0, 0.0, 10.0, 0.5]])
    scores = point_class_scores(model.pts_voxel_encoder.fusion_layer,
                                model.img_point_loss.classifier, [f[:1] for f in img_feats],
                                [torch.cat([inside, outside])], metas[:1])[0]
    assert scores.shape == (3, 4)
    assert scores[0].sum() == pytest.approx(1.0, abs=1e-5)
    assert (scores[1:] == 0).all()


def test_dynamic_voxel_points_are_painted_in_their_own_frame(model_and_data):
    from gemini_det3d.detectors.point_painting import paint_dynamic_points
    model, data, metas, img_feats = model_and_data
    points = data['inputs']['points']
    # dynamic voxels: every point of the batch in order, the sample index in column 0 (also
    # for a point outside the grid, whose other coordinates are -1)
    coors = torch.cat([torch.full((len(p), 4), i, dtype=torch.int32) for i, p in enumerate(points)])
    coors[0, 1:] = -1
    painted = paint_dynamic_points(torch.cat(points), coors, 2, model.pts_voxel_encoder.fusion_layer,
                                   model.img_point_loss.classifier, img_feats, metas)
    n0 = len(points[0])
    for i, part in enumerate((painted[:n0], painted[n0:])):
        want = direct_scores(model, img_feats, points[i], metas, i)
        in_picture = part[:, 4:].sum(1) > 0.5
        assert in_picture.float().mean() > 0.9
        torch.testing.assert_close(part[in_picture, 4:], want[in_picture])
        torch.testing.assert_close(part[:, :4], points[i])


def test_the_head_reads_the_painted_channels_but_does_not_train_the_classifier(model_and_data):
    model, data, _, _ = model_and_data
    losses = model(**data, mode='loss')
    model.zero_grad()
    sum(sum(losses[k]) for k in ('loss_cls', 'loss_bbox')).backward()  # per-level lists
    # the first VFE layer's input: x y z r, 4 scores, then cluster and voxel-centre offsets
    weight = model.pts_voxel_encoder.vfe_layers[0].linear.weight
    assert weight.shape[1] == 8 + 3 + 3
    assert weight.grad[:, 4:8].abs().sum() > 0
    grad = model.img_point_loss.classifier.weight.grad
    assert grad is None or grad.abs().sum() == 0


def test_painting_needs_the_image_classifier(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    cfg = retarget(load(TINY), converted_synthetic_kitti)
    cfg.model.paint_points = True
    cfg.model.img_point_loss = None
    with pytest.raises(ValueError, match='paint_points needs img_point_loss'):
        MODELS.build(cfg.model)
