"""tools/test.py --task picks what --show-dir draws, as mmdet3d's does: the scan views for
lidar_det, the camera picture for mono_det, both for multi-modality_det (the default)."""
import os
import pickle

import numpy as np
import pytest

from _configs import REPO, load
from helpers.scripts import load_script

TINY = 'configs/gemini_det3d/tiny/geminifusion-mvx_dual-swin-tiny-fpn_second-secfpn_1xb1-cpu_synthetic-kitti-3d-3class.py'


def _test_tool():
    """tools/test.py as a module (its name would clash with pytest's idea of ``test``)."""
    return load_script('tools/test.py', name='gemini_tools_test')


def test_task_choices_are_mmdet3ds_that_apply():
    tool = _test_tool()
    assert tool.parse_args(['cfg.py', 'x.pth']).task == 'multi-modality_det'
    for task in ('lidar_det', 'mono_det', 'multi-modality_det'):
        assert tool.parse_args(['cfg.py', 'x.pth', '--task', task]).task == task
    with pytest.raises(SystemExit):  # nuScenes' surround cameras: no such input here
        tool.parse_args(['cfg.py', 'x.pth', '--task', 'multi-view_det'])


@pytest.mark.parametrize('task, suffixes', [
    ('lidar_det', ['bev', 'chase']),
    ('mono_det', ['camera']),
    ('multi-modality_det', ['bev', 'camera', 'chase']),
])
def test_show_dir_writes_the_pictures_of_the_task(task, suffixes, converted_synthetic_kitti,
                                                   tmp_path):
    """What tools/test.py --show-dir calls, on one val frame with an empty prediction."""
    from gemini_det3d.visualization import render_dataset_results
    root = converted_synthetic_kitti
    cfg = load(TINY)
    cfg.test_dataloader.dataset.data_root = root
    frame = open(f'{root}ImageSets/val.txt').read().split()[0]
    results = tmp_path / 'results.pkl'
    results.write_bytes(pickle.dumps([dict(
        lidar_path=f'{root}training/velodyne/{frame}.bin',
        pred_instances_3d=dict(bboxes_3d=np.zeros((0, 7)), scores_3d=np.zeros(0)))]))
    out = tmp_path / 'show'
    render_dataset_results(cfg, str(results), str(out), num=1, backend='software',
                           pictures=_test_tool().TASK_PICTURES[task])
    assert sorted(os.listdir(out)) == [f'{frame}_{suffix}.png' for suffix in suffixes]
