"""tools/ablate.py: each config is trained then tested with the same overrides, the table
carries each config's own metrics and measured minutes, and the chart is written."""
import json
import os
import os.path as osp

from helpers.scripts import load_script

ablate = load_script('tools/ablate.py')


def _fake_tools(calls, car_ap):
    """A stand-in for subprocess.run: train writes last_checkpoint, test writes metrics.json
    whose Car AP is ``car_ap[config]``."""
    def run(cmd, cwd, check):
        calls.append(cmd)
        tool, config = osp.basename(cmd[1]), cmd[2]
        work_dir = cmd[cmd.index('--work-dir') + 1]
        os.makedirs(work_dir, exist_ok=True)
        if tool == 'train.py':
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work_dir, 'epoch_10.pth'))
        else:
            assert cmd[3].endswith('epoch_10.pth')
            metrics = {
                'Kitti metric/Car_3D_AP40_moderate_strict': car_ap[config],
                'Kitti metric/Car_3D_AP40_easy_strict': 99.0,  # must not be picked
                'Kitti metric/Pedestrian_3D_AP40_moderate_strict': 20.0,
                'Kitti metric/Cyclist_3D_AP40_moderate_strict': 10.0,
                'Kitti metric/Car_BEV_AP40_moderate_strict': car_ap[config] + 1,
            }
            with open(osp.join(work_dir, 'metrics.json'), 'w') as f:
                json.dump(metrics, f)
    return run


def test_trains_tests_and_reports_each_config(tmp_path, monkeypatch):
    configs = ['a/gemini.py', 'b/nofusion.py']
    for c in configs:
        (tmp_path / c).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / c).write_text('')
    calls = []
    car_ap = {str(tmp_path / 'a/gemini.py'): 61.25, str(tmp_path / 'b/nofusion.py'): 40.5}
    monkeypatch.setattr(ablate.subprocess, 'run', _fake_tools(calls, car_ap))
    out = tmp_path / 'abl'
    ablate.main([str(tmp_path / c) for c in configs] + ['--work-dir', str(out),
                '--cfg-options', 'train_cfg.max_epochs=3', '--seed', '5'])

    assert [osp.basename(c[1]) for c in calls] == ['train.py', 'test.py'] * 2
    for c in calls:  # the same budget for every config, and no second evaluation in training
        assert 'train_cfg.max_epochs=3' in c
        is_train = osp.basename(c[1]) == 'train.py'
        assert (f'train_cfg.val_begin={10 ** 6}' in c) == is_train
        assert ('randomness.seed=5' in c) == is_train
    md = (out / 'ablation.md').read_text()
    assert 'train_cfg.max_epochs=3' in md and 'seed 5' in md and 'cores' in md
    rows = {line.split('|')[1].strip(): [x.strip() for x in line.strip('|').split('|')]
            for line in md.splitlines() if line.startswith('| gemini') or line.startswith('| nofusion')}
    assert rows['gemini'][1:5] == ['61.25', '20.00', '10.00', '62.25']
    assert rows['nofusion'][1:5] == ['40.50', '20.00', '10.00', '41.50']
    assert len(rows['gemini']) == 7  # config, 4 AP columns, train min, test min
    assert (out / 'ablation.png').stat().st_size > 1000


def test_missing_config_is_named(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit) as e:
        ablate.main([str(tmp_path / 'nope.py'), '--work-dir', str(tmp_path / 'abl')])
    assert 'nope.py' in str(e.value) and 'not found' in str(e.value)


def test_legend_names_each_config_by_its_first_word_when_that_is_unique():
    configs = ['configs/tiny/geminifusion-mvx_a.py', 'configs/tiny/nofusion-mvx_a.py',
               'configs/tiny/lidaronly-second_a.py']
    assert ablate._legend_labels(configs) == ['geminifusion', 'nofusion', 'lidaronly']
    # two configs with the same first word keep their whole names, so the legend never merges them
    same = ['a/geminifusion-x_1.py', 'a/geminifusion-y_2.py']
    assert ablate._legend_labels(same) == ['geminifusion-x_1', 'geminifusion-y_2']


def test_probe_camera_adds_the_swap_drop_for_configs_with_a_camera(tmp_path, monkeypatch):
    """--probe-camera: a camera config is evaluated by tools/probe_camera.py (its as-is AP in the
    AP columns, as is minus swapped summed as the drop); a LiDAR-only config by tools/test.py."""
    fused, lidar = tmp_path / 'geminifusion-x.py', tmp_path / 'lidaronly-x.py'
    fused.write_text("model = dict(img_backbone=dict(type='DualSwin'))\n")
    lidar.write_text('model = dict(img_backbone=None)\n')
    calls = []
    test_like = _fake_tools(calls, {str(lidar): 30.0})

    def run(cmd, cwd, check):
        if osp.basename(cmd[1]) != 'probe_camera.py':
            return test_like(cmd, cwd, check)
        calls.append(cmd)
        aps = {'as_is': (50.0, 40.0, 30.0), 'swap': (45.5, 31.0, 29.0)}
        metrics = {way: {f'Kitti metric/{c}_3D_AP40_moderate_strict': v
                         for c, v in zip(('Car', 'Pedestrian', 'Cyclist'), aps[way])}
                   for way in aps}
        swap = {c: b - a for c, a, b in zip(('Car', 'Pedestrian', 'Cyclist'), *aps.values())}
        swap['sum'] = sum(swap.values())
        os.makedirs(cmd[cmd.index('--work-dir') + 1], exist_ok=True)
        with open(cmd[cmd.index('--out-json') + 1], 'w') as f:
            json.dump({'metrics': metrics, 'differences': {'swap': swap}}, f)
    monkeypatch.setattr(ablate.subprocess, 'run', run)
    out = tmp_path / 'abl'
    ablate.main([str(fused), str(lidar), '--work-dir', str(out), '--probe-camera'])
    assert [osp.basename(c[1]) for c in calls] == ['train.py', 'probe_camera.py', 'train.py', 'test.py']
    md = (out / 'ablation.md').read_text()
    assert 'camera-swap drop' in md
    rows = {line.split('|')[1].strip(): [x.strip() for x in line.strip('|').split('|')]
            for line in md.splitlines() if line.startswith('| geminifusion') or line.startswith('| lidaronly')}
    assert rows['geminifusion-x'][1:4] == ['50.00', '40.00', '30.00']
    assert rows['geminifusion-x'][5] == '+14.50'  # (50 + 40 + 30) - (45.5 + 31 + 29)
    assert rows['lidaronly-x'][1] == '30.00' and rows['lidaronly-x'][5] == 'no camera'


def test_combine_joins_runs_of_two_seeds_into_one_table(tmp_path, monkeypatch):
    """Each run writes ablation.json with its seed in every row; --combine trains nothing and
    gives one table with a seed column (each run's own AP in its rows) and one chart."""
    config = tmp_path / 'gemini.py'
    config.write_text('')
    runs = []
    for seed, car in ((0, 61.25), (1, 40.5)):
        monkeypatch.setattr(ablate.subprocess, 'run', _fake_tools([], {str(config): car}))
        out = tmp_path / f'abl_s{seed}'
        ablate.main([str(config), '--work-dir', str(out), '--seed', str(seed)])
        saved = json.loads((out / 'ablation.json').read_text())
        assert [r['seed'] for r in saved['rows']] == [seed] and f'seed {seed}' in saved['settings']
        runs.append(str(out))

    def no_tool(*args, **kwargs):
        raise AssertionError('--combine must not train or test')
    monkeypatch.setattr(ablate.subprocess, 'run', no_tool)
    both = tmp_path / 'both'
    ablate.main(['--combine'] + runs + ['--work-dir', str(both)])
    md = (both / 'ablation.md').read_text()
    rows = [[x.strip() for x in line.strip('|').split('|')] for line in md.splitlines()
            if line.startswith('| 0 |') or line.startswith('| 1 |')]
    assert [(r[0], r[1], r[2]) for r in rows] == [('0', 'gemini', '61.25'), ('1', 'gemini', '40.50')]
    assert 'seed 0' in md and 'seed 1' in md  # both runs' settings
    assert (both / 'ablation.png').stat().st_size > 1000


def test_combine_names_a_run_without_its_json(tmp_path):
    import pytest
    with pytest.raises(SystemExit) as e:
        ablate.main(['--combine', str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path / 'out')])
    assert 'nowhere' in str(e.value) and 'ablation.json' in str(e.value)
