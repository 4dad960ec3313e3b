"""benchmarks/image_point_features.py: the loss's classifier read at every point, five ways."""
import json

import numpy as np
import pytest

from helpers.scripts import load_script
from test_probe_camera import GEMINI, LIDAR_ONLY, _save_untrained

bench = load_script('benchmarks/image_point_features.py', name='gemini_image_point_features')


def test_recall_table_counts_rows_and_skips_absent_classes():
    confusion = np.array([[8, 2, 0, 0],    # background: 8 of 10 right
                          [1, 3, 0, 0],    # pedestrian: 3 of 4
                          [0, 0, 0, 0],    # no cyclist point: not in the mean
                          [0, 0, 0, 5]])   # car: 5 of 5
    r = bench.recall_table(confusion)
    assert r['background'] == pytest.approx(0.8) and r['Pedestrian'] == pytest.approx(0.75)
    assert np.isnan(r['Cyclist']) and r['Car'] == 1.0
    assert r['balanced'] == pytest.approx((0.8 + 0.75 + 1.0) / 3)
    assert r['points'] == 19
    p = bench.precision_table(confusion)
    # columns: of the 9 points named background 8 are; of 5 named pedestrian 3; none named cyclist
    assert p['background'] == pytest.approx(8 / 9) and p['Pedestrian'] == pytest.approx(3 / 5)
    assert np.isnan(p['Cyclist']) and p['Car'] == 1.0


@pytest.mark.slow
def test_every_way_reads_the_same_points_and_the_inputs_reach_the_classifier(
        converted_synthetic_kitti, tmp_path):
    ckpt = _save_untrained(GEMINI, tmp_path / 'gemini.pth')
    out = tmp_path / 'features.json'
    root = converted_synthetic_kitti
    recalls = bench.main([GEMINI, ckpt, '--num-frames', '2', '--json', str(out), '--cfg-options',
                          f'test_dataloader.dataset.data_root={root}',
                          f'test_dataloader.dataset.ann_file={root}kitti_infos_val.pkl'])
    saved = json.loads(out.read_text())
    confusion = {w: np.array(c) for w, c in saved['confusion'].items()}
    rows = confusion['as_is'].sum(1)
    assert rows.sum() > 0 and rows[1:].sum() > 0  # points in labelled boxes were counted
    for way in bench.WAYS:
        # the same points and labels every way: only the image input differs
        np.testing.assert_array_equal(confusion[way].sum(1), rows)
        assert recalls[way]['points'] == rows.sum()
    # each changed input changes what the classifier says somewhere
    for way in bench.WAYS[1:]:
        assert not np.array_equal(confusion[way], confusion['as_is']), way


def test_model_without_the_loss_is_refused(tmp_path):
    with pytest.raises(SystemExit, match='no img_point_loss'):
        bench.main([LIDAR_ONLY, str(tmp_path / 'none.pth')])
