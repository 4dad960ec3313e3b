"""GroundContactRefiner: box bottoms moved to the median height of the ground around them."""
import math

import pytest
import torch

import gemini_det3d  # noqa: F401
from gemini_det3d.detectors import GroundContactError, GroundContactRefiner


def _ground(z, x_range=(0.0, 20.0), y_range=(-6.0, 6.0), step=0.2, slope=0.0):
    """A grid of road points at height ``z + slope * x``: ``[N, 4]`` (x, y, z, intensity)."""
    xs = torch.arange(x_range[0], x_range[1], step)
    ys = torch.arange(y_range[0], y_range[1], step)
    x, y = torch.meshgrid(xs, ys, indexing='ij')
    x, y = x.flatten(), y.flatten()
    return torch.stack([x, y, z + slope * x, torch.full_like(x, 0.3)], dim=1)


def _block(x0, x1, y0, y1, z0, z1, step=0.1):
    """Points filling a box volume (an object's surface is enough for the tests)."""
    xs, ys, zs = (torch.arange(a, b, step) for a, b in ((x0, x1), (y0, y1), (z0, z1)))
    x, y, z = torch.meshgrid(xs, ys, zs, indexing='ij')
    return torch.stack([x.flatten(), y.flatten(), z.flatten(), torch.zeros(x.numel())], dim=1)


def test_the_bottom_moves_to_the_ground_and_nothing_else_changes():
    # road at -1.7; a car (4 x 1.6 x 1.5 m) standing on it at x 10, y 0, whose own points
    # reach down to the road; the head put its bottom 0.25 m too high
    car = _block(8.0, 12.0, -0.8, 0.8, -1.7, -0.2)
    points = torch.cat([_ground(-1.7), car])
    boxes = torch.tensor([[10.0, 0.0, -1.45, 4.0, 1.6, 1.5, 0.0],
                          [10.0, 0.0, -1.95, 3.6, 1.5, 1.4, math.pi / 2]])  # too low, turned
    out = GroundContactRefiner()(points, boxes)
    assert out[:, 2].tolist() == pytest.approx([-1.7, -1.7], abs=1e-5)
    assert torch.equal(out[:, [0, 1, 3, 4, 5, 6]], boxes[:, [0, 1, 3, 4, 5, 6]])
    assert boxes[0, 2] == pytest.approx(-1.45)  # the input is not modified


def test_the_ground_follows_a_slope_and_ignores_raised_things_nearby():
    # road rising 5 cm per metre; a second car's roof (1.5 m up) right beside the box, and
    # a wall from 1 m above the road along the other side: more than height_band above the
    # predicted bottom, neither is taken for ground
    points = torch.cat([_ground(-1.7, slope=0.05),
                        _block(8.0, 12.0, 1.2, 2.8, -0.2 + 0.5, -0.1 + 0.5),
                        _block(8.0, 12.0, -2.4, -2.2, -0.2 + 0.5, 0.5 + 0.5)])
    box = torch.tensor([[10.0, 0.0, -1.0, 4.0, 1.6, 1.5, 0.0]])
    out = GroundContactRefiner()(points, box)
    # the road at the box's centre is -1.7 + 0.05 * 10 = -1.2; the ring is symmetric in x
    assert out[0, 2].item() == pytest.approx(-1.2, abs=0.02)


def test_too_few_ground_points_keep_the_heads_bottom():
    points = torch.cat([_ground(-1.7, x_range=(30.0, 40.0)),  # road far from the box
                        torch.tensor([[10.0, 2.5, -1.7, 0.0]] * 3)])  # 3 points near it
    boxes = torch.tensor([[10.0, 0.0, -1.5, 4.0, 1.6, 1.5, 0.0]])
    assert GroundContactRefiner(min_points=5)(points, boxes)[0, 2] == pytest.approx(-1.5)
    assert GroundContactRefiner(min_points=3)(points, boxes)[0, 2] == pytest.approx(-1.7)


def test_only_the_chosen_classes_move_and_empty_inputs_pass_through():
    points = _ground(-1.7)
    boxes = torch.tensor([[5.0, 0.0, -1.5, 0.8, 0.6, 1.7, 0.0],
                          [10.0, 0.0, -1.5, 4.0, 1.6, 1.5, 0.0]])
    labels = torch.tensor([0, 2])
    out = GroundContactRefiner(labels=[2])(points, boxes, labels)
    assert out[:, 2].tolist() == pytest.approx([-1.5, -1.7], abs=1e-5)
    empty = torch.zeros((0, 7))
    assert GroundContactRefiner()(points, empty).shape == (0, 7)
    assert torch.equal(GroundContactRefiner()(torch.zeros((0, 4)), boxes), boxes)
    with pytest.raises(GroundContactError, match='no box labels'):
        GroundContactRefiner(labels=[2])(points, boxes)


@pytest.mark.parametrize('kwargs, message', [
    (dict(ring_inner=2.0, ring_outer=1.0), 'ring_inner < ring_outer'),
    (dict(height_band=0.0), 'height_band'),
    (dict(min_points=0), 'min_points'),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(GroundContactError, match=message):
        GroundContactRefiner(**kwargs)


def test_the_detector_hands_its_predictions_to_the_refiner():
    """GeminiMVXFasterRCNN(ground_refiner=...) returns the refiner's boxes for each
    frame, computed from that frame's own points; without the key, the head's boxes."""
    from mmdet3d.registry import MODELS
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
    from mmengine.structures import InstanceData

    from gemini_det3d.detectors import GeminiMVXFasterRCNN

    head_boxes = [torch.tensor([[10.0, 0.0, -1.4, 4.0, 1.6, 1.5, 0.0]]),
                  torch.tensor([[10.0, 0.0, -0.9, 4.0, 1.6, 1.5, 0.0]])]

    class FixedPredictions(GeminiMVXFasterRCNN):
        def _predict_nonempty(self, batch_inputs_dict, batch_data_samples, **kwargs):
            for boxes, sample in zip(head_boxes, batch_data_samples):
                sample.pred_instances_3d = InstanceData(
                    bboxes_3d=LiDARInstance3DBoxes(boxes.clone()), scores_3d=torch.ones(1),
                    labels_3d=torch.tensor([2]))
            return batch_data_samples

    points = [_ground(-1.7), _ground(-1.2)]  # each frame its own road height
    for refiner, expected in ((dict(type='GroundContactRefiner'), [-1.7, -1.2]),
                              (None, [-1.4, -0.9])):
        model = FixedPredictions(ground_refiner=refiner)
        assert isinstance(model.ground_refiner, GroundContactRefiner) == (refiner is not None)
        samples = model.predict({'points': points}, [Det3DDataSample(), Det3DDataSample()])
        got = [s.pred_instances_3d.bboxes_3d for s in samples]
        assert all(isinstance(b, LiDARInstance3DBoxes) for b in got)
        assert [b.tensor[0, 2].item() for b in got] == pytest.approx(expected, abs=1e-5)
    assert MODELS.get('GroundContactRefiner') is GroundContactRefiner


def test_the_ring_turns_with_the_box():
    # ten points 2.2 m to either side of (10, 0): beside a box pointing along x (ground),
    # but inside the footprint of the same box turned by 90 degrees (its own points)
    points = torch.tensor([[10.0, 2.2, -1.2, 0.0], [10.0, -2.2, -1.2, 0.0]]).repeat(5, 1)
    along_x = torch.tensor([[10.0, 0.0, -1.5, 4.0, 1.6, 1.5, 0.0]])
    along_y = torch.tensor([[10.0, 0.0, -1.5, 4.0, 1.6, 1.5, math.pi / 2]])
    assert GroundContactRefiner()(points, along_x)[0, 2] == pytest.approx(-1.2)
    assert GroundContactRefiner()(points, along_y)[0, 2] == pytest.approx(-1.5)
