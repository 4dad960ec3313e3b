"""Shared fixtures: a small synthetic KITTI-layout set, converted once per test session."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))
os.environ.setdefault('PYTHONWARNINGS', 'ignore')


@pytest.fixture(scope='session')
def converted_synthetic_kitti(tmp_path_factory):
    """``{root}/`` with 4 train, 2 val, 1 test synthetic frames, converted by create_data."""
    from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti
    root = tmp_path_factory.mktemp('synthetic_kitti')
    make_synthetic_kitti(root, num_train=4, num_val=2, num_test=1, seed=7, progress=False)
    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'create_data.py'), 'kitti',
                    '--root-path', str(root), '--out-dir', str(root), '--extra-tag', 'kitti'],
                   check=True, capture_output=True)
    return str(root) + '/'
