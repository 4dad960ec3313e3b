"""Shared fixtures and the suite's rules.

* One synthetic KITTI-layout set per session (``tests/helpers/synthetic_set.py``): generated
  once (``synthetic_kitti_source``, raw files only) and converted once by the project's
  converter (``converted_synthetic_kitti``). Tests that damage or convert a tree copy it first.
* A test that starts a process or runs a training loop must be marked ``slow`` (so that
  ``make test-fast`` stays fast): an unmarked test that does either fails, naming the rule.
"""
import os
import os.path as osp
import shutil
import subprocess

import pytest

from helpers.synthetic_set import NUM_TEST, NUM_TRAIN, NUM_VAL, SEED


class SyntheticSource:
    """A generated, unconverted KITTI tree: ``root`` and the generator's ``summary``."""

    def __init__(self, root, summary):
        self.root = root
        self.summary = summary


@pytest.fixture(scope='session')
def synthetic_kitti_source(tmp_path_factory):
    """The session's generated KITTI tree (raw files, no converter products). Read only."""
    from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti
    root = tmp_path_factory.mktemp('synthetic_kitti_source')
    summary = make_synthetic_kitti(root, NUM_TRAIN, NUM_VAL, NUM_TEST, seed=SEED, progress=False)
    _check_shared_set(root, summary['frame_ids'])
    return SyntheticSource(root, summary)


def _check_shared_set(root, frame_ids):
    """What the suite relies on in the shared set, checked once here (a changed world or seed
    otherwise fails far away): every evaluated class in the train and val splits, at least 3
    labelled objects in each of the first two train frames (tests that batch "the first frames")."""
    from gemini_det3d.data import kitti_io
    classes = ('Car', 'Pedestrian', 'Cyclist')
    for split in ('train', 'val'):
        labels = [[o['type'] for o in kitti_io.read_label(root / 'training' / 'label_2' / f'{name}.txt')
                   if o['type'] in classes] for name in frame_ids[split]]
        missing = set(classes) - {t for frame in labels for t in frame}
        assert not missing, f'shared synthetic set (seed {SEED}): no {sorted(missing)} in {split}'
        if split == 'train':
            assert all(len(frame) >= 3 for frame in labels[:2]), (
                f'shared synthetic set (seed {SEED}): first train frames hold {labels[:2]}')


@pytest.fixture(scope='session')
def converted_synthetic_kitti(tmp_path_factory, synthetic_kitti_source):
    """``'{root}/'``: a copy of the session's tree converted by ``create_kitti_data`` (the code
    behind ``tools/create_data.py``). Read only."""
    from gemini_det3d.datasets.kitti_converter import create_kitti_data
    root = tmp_path_factory.mktemp('synthetic_kitti') / 'kitti'
    shutil.copytree(synthetic_kitti_source.root, root)
    create_kitti_data(root, root, 'kitti', progress=False)
    return str(root) + '/'


# The processes the tests start (the tools) are checked for their one-line error on stderr,
# where third-party warnings (mmengine's pkg_resources import, mmdet3d's Anchor3DHead
# dir_offset notice, ...) would add lines: child processes do not print warnings. This process
# keeps pytest.ini's filters, one by one, and shows every other warning.
os.environ['PYTHONWARNINGS'] = 'ignore'


class SlowWorkInFastTest(AssertionError):
    """A test not marked ``slow`` started a process or a training loop."""


@pytest.fixture(autouse=True)
def _slow_work_needs_the_slow_mark(request, monkeypatch):
    if request.node.get_closest_marker('slow') is not None:
        return

    def refuse(what):
        raise SlowWorkInFastTest(f'{request.node.nodeid} {what} but is not marked slow '
                                 '(@pytest.mark.slow: `make test-fast` skips such tests)')

    popen_init = subprocess.Popen.__init__

    def guarded_popen_init(self, args, *rest, **kwargs):
        # Python tools, shell scripts and launchers count; library helpers (a compiler version
        # query, lscpu) do not.
        first = args if isinstance(args, (str, bytes)) else args[0]
        name = osp.basename(str(first)).split()[0]
        if name.startswith('python') or name.endswith('.sh') or name in ('bash', 'torchrun'):
            refuse(f'starts a process ({name})')
        popen_init(self, args, *rest, **kwargs)

    def guarded_train(self, *args, **kwargs):
        refuse('runs a training loop')

    monkeypatch.setattr(subprocess.Popen, '__init__', guarded_popen_init)
    from mmengine.runner import Runner
    monkeypatch.setattr(Runner, 'train', guarded_train)
