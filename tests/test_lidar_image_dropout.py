"""LiDARImageDropout: some training frames lose their LiDAR image, never their picture or points."""
import numpy as np
import pytest

from gemini_det3d.datasets.transforms import LiDARImageDropout


def stacked_frame(rng, h=6, w=8, lidar_channels=4):
    img = rng.normal(size=(h, w, 3 + lidar_channels)).astype(np.float32)
    return dict(img=img, depth_img=img[..., 3:].copy(), points=rng.normal(size=(10, 4)))


def test_dropped_frame_has_an_empty_lidar_image_and_its_own_picture():
    rng = np.random.default_rng(0)
    frame = stacked_frame(rng)
    before = {k: v.copy() for k, v in frame.items()}
    caller_img = frame['img']
    out = LiDARImageDropout(prob=1.0)(frame)
    assert out['lidar_image_dropped'] is True
    assert not out['img'][..., 3:].any() and not out['depth_img'].any()
    np.testing.assert_array_equal(out['img'][..., :3], before['img'][..., :3])
    np.testing.assert_array_equal(out['points'], before['points'])
    # the caller's array is not written into (a cached frame stays whole)
    np.testing.assert_array_equal(caller_img, before['img'])


def test_kept_frame_is_unchanged():
    frame = stacked_frame(np.random.default_rng(1))
    img = frame['img'].copy()
    out = LiDARImageDropout(prob=0.0)(frame)
    assert out['lidar_image_dropped'] is False
    np.testing.assert_array_equal(out['img'], img)


def test_drop_rate_follows_prob_and_the_numpy_seed():
    """One np.random draw per frame: the epoch seeding makes the pattern repeatable."""
    transform = LiDARImageDropout(prob=0.3)
    rng = np.random.default_rng(2)

    def pattern():
        np.random.seed(123)
        return [transform(stacked_frame(rng, 2, 2))['lidar_image_dropped'] for _ in range(400)]

    first = pattern()
    assert first == pattern()
    assert 0.22 < np.mean(first) < 0.38


@pytest.mark.parametrize('prob', [-0.1, 1.5])
def test_bad_prob_is_refused(prob):
    with pytest.raises(ValueError, match='prob must be in'):
        LiDARImageDropout(prob=prob)


def test_unstacked_image_is_refused_with_the_reason():
    with pytest.raises(ValueError, match='after StackDepthImage'):
        LiDARImageDropout()(dict(img=np.zeros((4, 4, 3), np.float32)))


def test_tiny_config_empties_lidar_images_in_training_only():
    """The step sits after StackDepthImage (the stacked image it empties) and before packing;
    evaluation sees every frame whole."""
    from _configs import load
    cfg = load('configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py')
    train = [s['type'] for s in cfg.train_dataloader.dataset.dataset.pipeline]
    at = train.index('LiDARImageDropout')
    assert train[at - 1] == 'StackDepthImage' and train[at + 1] == 'Pack3DDetInputs'
    assert cfg.train_dataloader.dataset.dataset.pipeline[at]['prob'] == 0.5
    for loader in ('val_dataloader', 'test_dataloader'):
        assert 'LiDARImageDropout' not in [s['type'] for s in cfg[loader].dataset.pipeline]
