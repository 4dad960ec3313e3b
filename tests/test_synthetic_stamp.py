"""The synthetic set's stamp: the demo reuses a set only when this code made it with its settings."""
import json

from gemini_det3d.data import synthetic_stamp
from gemini_det3d.data.synthetic_kitti import make_synthetic_kitti

SETTINGS = dict(seed=3, num_train=1, num_val=1, num_test=0)


def test_generated_set_carries_a_stamp_that_matches_its_settings(tmp_path):
    make_synthetic_kitti(tmp_path, 1, 1, 0, seed=3, progress=False)
    stamp = json.loads((tmp_path / synthetic_stamp.STAMP_FILE).read_text())
    assert stamp == dict(SETTINGS, generator=synthetic_stamp.generator_fingerprint())
    assert synthetic_stamp.stamp_problem(tmp_path, **SETTINGS) is None
    assert 'seed 3 (wanted 4)' in synthetic_stamp.stamp_problem(tmp_path, **dict(SETTINGS, seed=4))


def test_missing_or_foreign_stamp_is_named(tmp_path, monkeypatch):
    assert 'missing' in synthetic_stamp.stamp_problem(tmp_path, **SETTINGS)
    synthetic_stamp.write_stamp(tmp_path, **SETTINGS)
    assert synthetic_stamp.stamp_problem(tmp_path, **SETTINGS) is None
    # the generator's code changed since: another fingerprint
    monkeypatch.setattr(synthetic_stamp, 'generator_fingerprint', lambda: '0123456789abcdef')
    assert 'another version of the generator' in synthetic_stamp.stamp_problem(tmp_path, **SETTINGS)
    (tmp_path / synthetic_stamp.STAMP_FILE).write_text('{not json')
    assert 'unreadable' in synthetic_stamp.stamp_problem(tmp_path, **SETTINGS)


def test_fingerprint_follows_the_generator_sources(tmp_path, monkeypatch):
    for name in ('a.py', 'b.py'):
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(synthetic_stamp, '_PACKAGE', tmp_path)
    first = synthetic_stamp.generator_fingerprint()
    assert first == synthetic_stamp.generator_fingerprint()
    (tmp_path / 'b.py').write_text('changed')
    assert synthetic_stamp.generator_fingerprint() != first


def test_demo_stops_on_a_set_it_did_not_make(tmp_path, capsys):
    import pytest
    from helpers.scripts import load_script
    demo = load_script('tools/demo.py', name='gemini_demo')
    (tmp_path / 'kitti_infos_val.pkl').write_bytes(b'')  # a converted set, without a stamp
    with pytest.raises(SystemExit) as stop:
        demo.main(['--data-root', str(tmp_path), '--out-dir', str(tmp_path / 'out')])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and 'missing' in err and len(err.strip().splitlines()) == 1
