"""benchmarks/end_to_end.py: the ratios are the measured medians over the reference's, every
requested model has a row (measured, or marked as not fitting with the reason)."""
import json
import os.path as osp
import statistics

import pytest

from helpers.scripts import load_script

end_to_end = load_script('benchmarks/end_to_end.py')
e2e_report = load_script('benchmarks/e2e_report.py')


def _measured(key, label, cpu, wall, memory):
    whole, network, image = memory
    return dict(key=key, label=label, config=f'{key}.py', status='ok', params=1e6,
                fusion='-', samples_ms=dict(cpu=cpu, wall=wall), peak_memory_mb=whole,
                network_peak_mb=network, image_branch_peak_mb=image)


def _table_row(text, label):
    rows = [line for line in text.splitlines() if line.startswith(f'| {label} |')]
    assert len(rows) == 1, (label, text)
    return [cell.strip() for cell in rows[0].strip('|').split('|')]


def test_medians_ratios_and_table_from_given_measurements():
    # medians differ from means and from the first sample, so a wrong statistic shows
    records = {
        'lidaronly': _measured('lidaronly', 'LiDAR', [100., 400., 110.], [1., 2., 3.],
                               (200., 20., 0.)),
        'nofusion': _measured('nofusion', 'NoFusion', [250., 200., 900.], [4., 5., 6.],
                              (500., 40., 30.)),
        'geminifusion': _measured('geminifusion', 'Gemini', [300., 230., 1.], [7., 9., 8.],
                                  (650., 70., 33.)),
        'crossattn': dict(key='crossattn', label='Cross', config='c.py',
                          status='does not fit', reason='out of memory (tried 40 GiB)'),
    }
    e2e_report.add_medians_and_ratios(records, clock='cpu')
    assert records['nofusion']['median_ms'] == dict(cpu=250., wall=5.)
    gemini = records['geminifusion']
    assert gemini['ratios']['time'] == pytest.approx(dict(lidaronly=230. / 110.,
                                                          nofusion=230. / 250.))
    assert gemini['ratios']['memory'] == pytest.approx(dict(lidaronly=650. / 200.,
                                                            nofusion=650. / 500.))
    assert gemini['ratios']['network_memory'] == pytest.approx(dict(lidaronly=70. / 20.,
                                                                    nofusion=70. / 40.))
    # LiDAR-only has no image branch: no ratio to its 0 MB
    assert gemini['ratios']['image_branch_memory'] == dict(lidaronly=None,
                                                           nofusion=pytest.approx(33. / 30.))
    assert records['lidaronly']['ratios']['time'] == pytest.approx(
        dict(lidaronly=1.0, nofusion=110. / 250.))
    assert 'ratios' not in records['crossattn']
    assert records['lidaronly']['ratios']['image_branch_memory']['nofusion'] is None

    table = e2e_report.format_table(records, 'cpu', 'cpu', repeats=3)
    cells = _table_row(table, 'Gemini')
    assert cells[3:] == ['230.0', '8.0', f'{230 / 110:.2f}', f'{230 / 250:.2f}', '650',
                         f'{650 / 200:.2f}', f'{650 / 500:.2f}', '70', f'{70 / 20:.2f}',
                         f'{70 / 40:.2f}', '33', f'{33 / 30:.2f}']
    cross = _table_row(table, 'Cross')
    assert cross[3] == 'does not fit: out of memory (tried 40 GiB)' and set(cross[4:]) == {'-'}
    assert 'CPU time' in table.splitlines()[0]  # CPU figures are labelled as such
    assert 'MET' in e2e_report.target_line(records, 'cpu')  # 0.92x <= 1.15x

    records['geminifusion']['samples_ms']['cpu'] = [300., 300., 300.]  # 1.2x NoFusion
    e2e_report.add_medians_and_ratios(records, clock='cpu')
    assert 'MISSED' in e2e_report.target_line(records, 'cpu')
    # a reference that did not run: no ratio to it, shown as '-'
    records['nofusion'] = dict(key='nofusion', label='NoFusion', config='n.py',
                               status='error', reason='boom')
    e2e_report.add_medians_and_ratios(records, clock='wall')
    assert records['geminifusion']['ratios']['time'] == dict(lidaronly=pytest.approx(8. / 2.),
                                                             nofusion=None)
    assert _table_row(e2e_report.format_table(records, 'cuda', 'wall', 3), 'Gemini')[6] == '-'


@pytest.mark.slow
def test_quick_run_measures_and_reports_every_requested_model(tmp_path, monkeypatch):
    real_build = end_to_end.build_model

    def build_or_run_out_of_memory(config_path, device='cpu', seed=0):
        if 'crossattn' in config_path:  # as a too small machine would
            raise RuntimeError('DefaultCPUAllocator: not enough memory: you tried to '
                               'allocate 123456789012 bytes.')
        return real_build(config_path, device, seed)

    monkeypatch.setattr(end_to_end, 'build_model', build_or_run_out_of_memory)
    result = end_to_end.main(['--quick', '--device', 'cpu', '--models', 'nofusion', 'crossattn',
                              '--out', str(tmp_path)])

    saved = json.loads((tmp_path / 'end_to_end_quick.json').read_text())
    assert saved['devices']['cpu']['models'].keys() == result['devices']['cpu']['models'].keys()
    cpu = saved['devices']['cpu']
    models = cpu['models']
    # the references are added to what was asked for; every model has a row
    assert list(models) == ['lidaronly', 'nofusion', 'crossattn']
    assert models['crossattn']['status'] == 'does not fit'
    assert models['crossattn']['reason'].startswith('out of memory')

    settings, device = saved['settings'], cpu['settings']
    assert device['device'] == 'cpu' and device['threads'] == 1 and device['clock'] == 'cpu'
    assert settings['repeats'] == 1 and settings['scan_points'] == 20000
    assert settings['image_file_hw'] == [375, 1242]
    assert device['img_shape'][0] <= 128 and device['padded_shape'] == [128, 416]
    assert 0 < device['points_in_model'] < 20000 and device['voxels'] > 0

    for key in ('lidaronly', 'nofusion'):
        record = models[key]
        assert record['status'] == 'ok' and record['peak_memory_mb'] > 0
        assert record['network_peak_mb'] > 0
        assert (record['image_branch_peak_mb'] > 0) == (key == 'nofusion')
        assert len(record['samples_ms']['cpu']) == len(record['samples_ms']['wall']) == 1
        assert record['samples_ms']['cpu'][0] > 0
    assert models['lidaronly']['ratios']['image_branch_memory'] == dict(lidaronly=None,
                                                                        nofusion=None)
    median = {key: statistics.median(models[key]['samples_ms']['cpu'])
              for key in ('lidaronly', 'nofusion')}
    for key in ('lidaronly', 'nofusion'):
        record = models[key]
        assert record['median_ms']['cpu'] == pytest.approx(median[key])
        for ref in ('lidaronly', 'nofusion'):
            assert record['ratios']['time'][ref] == pytest.approx(median[key] / median[ref])
            for ratio, field in (('memory', 'peak_memory_mb'),
                                 ('network_memory', 'network_peak_mb'),
                                 ('image_branch_memory', 'image_branch_peak_mb')):
                if 'lidaronly' in (key, ref) and ratio == 'image_branch_memory':
                    continue  # no image branch: checked above
                assert record['ratios'][ratio][ref] == pytest.approx(
                    record[field] / models[ref][field])

    text = (tmp_path / 'end_to_end_quick.md').read_text()
    for line in ('device: ', 'torch thread(s)', 'image file 1242x375', '20000 points',
                 'repeat(s)'):
        assert line in text
    nofusion_row = _table_row(text, models['nofusion']['label'])
    assert nofusion_row[5:7] == [f"{median['nofusion'] / median['lidaronly']:.2f}", '1.00']
    assert nofusion_row[7] == f"{models['nofusion']['peak_memory_mb']:.0f}"
    assert nofusion_row[10] == f"{models['nofusion']['network_peak_mb']:.0f}"
    assert nofusion_row[11:] == [
        f"{models['nofusion']['network_peak_mb'] / models['lidaronly']['network_peak_mb']:.2f}",
        '1.00', f"{models['nofusion']['image_branch_peak_mb']:.0f}", '1.00']
    assert 'does not fit: out of memory' in _table_row(text, models['crossattn']['label'])[3]
    assert 'not measured' in text  # no GeminiFusion: the target is not claimed
    png = (tmp_path / 'end_to_end_quick.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000


def test_unknown_model_is_one_line_error(capsys):
    from gemini_det3d.utils.cli import run_cli
    with pytest.raises(SystemExit) as exit_info:
        run_cli(end_to_end.main, ['--models', 'nofusion', 'fastfusion'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --models: unknown fastfusion') and '\n' not in err
