"""PointImageSemanticLoss: each LiDAR point's label from the 3D boxes, the loss on the image
features PointFusion samples, its gradient reaching the image branch only through them."""
import numpy as np
import pytest
import torch

from _configs import batch_from, load, retarget

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
LIDAR_ONLY = 'configs/gemini_det3d/tiny/lidaronly-second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'
LOSS = dict(type='PointImageSemanticLoss', in_channels=64 * 4, num_classes=3)


def test_points_take_the_label_of_the_box_they_lie_in():
    from gemini_det3d.detectors import points_in_boxes_label
    # a 4 m x 1 m x 2 m box at (10, 0) turned by 90 degrees: its length along y
    boxes = torch.tensor([[10.0, 0.0, -1.0, 4.0, 1.0, 2.0, np.pi / 2],
                          [20.0, 5.0, -1.0, 1.0, 1.0, 1.0, 0.0]])
    labels = torch.tensor([2, 0])
    points = torch.tensor([[10.0, 1.8, 0.0],    # inside the turned box (along its length)
                           [11.8, 0.0, 0.0],    # would be inside the unturned box only
                           [10.0, 0.0, -1.5],   # under the box's bottom
                           [10.0, 0.0, 0.9],    # just under its top
                           [20.4, 5.4, -0.5],   # the second box
                           [30.0, 0.0, 0.0]])   # nowhere
    assert points_in_boxes_label(points, boxes, labels).tolist() == [3, 0, 0, 3, 1, 0]
    assert points_in_boxes_label(points, boxes[:0], labels[:0]).tolist() == [0] * 6


@pytest.fixture(scope='module')
def model_and_batch(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    cfg = retarget(load(TINY), converted_synthetic_kitti)
    cfg.model.img_point_loss = LOSS
    batch = batch_from(cfg, 'train_dataloader', (0, 1))
    torch.manual_seed(0)
    return MODELS.build(cfg.model).train(), batch


def test_loss_is_added_and_trains_the_image_branch_through_pointfusion(model_and_batch):
    model, batch = model_and_batch
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss = losses['loss_img_point_sem']
    assert torch.isfinite(loss) and loss > 0
    model.zero_grad()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    # the image branch and PointFusion's lateral convs learn from it ...
    assert grads['img_point_loss.classifier.weight'].abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith('img_backbone.'))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items()
               if n.startswith('pts_voxel_encoder.fusion_layer.lateral_convs'))
    # ... and nothing of the point branch does (the labels come from the boxes, not the points)
    assert all(g is None or g.abs().sum() == 0 for n, g in grads.items()
               if n.startswith(('pts_middle_encoder', 'pts_backbone', 'pts_bbox_head')))


def test_points_outside_the_picture_are_left_out(model_and_batch):
    """Only points that PointFusion's sampling puts inside the picture reach the classifier."""
    model, batch = model_and_batch
    data = model.data_preprocessor(batch, training=True)
    # the reduced scans hold only points in the camera's view: add some far outside it
    # (5 m ahead, 20 m to the side: 76 degrees off the axis) that the loss gets to see
    points = data['inputs']['points'][0]
    outside = points[:1].repeat(500, 1)
    outside[:, :3] = torch.tensor([5.0, 20.0, -1.0])
    data['inputs']['points'][0] = torch.cat([points, outside])
    seen = []
    hook = model.img_point_loss.classifier.register_forward_hook(
        lambda module, args, out: seen.append(args[0].detach()))
    max_points = model.img_point_loss.max_points
    model.img_point_loss.max_points = 10 ** 7  # every point
    try:
        with torch.no_grad():
            model(**data, mode='loss')
    finally:
        hook.remove()
        model.img_point_loss.max_points = max_points
    # the loss's call is the forward's last: BEVCameraEvidence scores every point earlier
    # (those outside the picture too, and zeroes them itself), through the same classifier
    sampled = seen[-1]
    # a point outside the picture samples only zero padding: an all-zero feature row
    assert len(sampled) > 100 and (sampled.abs().sum(1) > 0).all()


def test_needs_a_fusion_layer(converted_synthetic_kitti):
    from mmdet3d.registry import MODELS
    cfg = retarget(load(LIDAR_ONLY), converted_synthetic_kitti)
    cfg.model.img_point_loss = LOSS
    with pytest.raises(ValueError, match='fusion_layer'):
        MODELS.build(cfg.model)
