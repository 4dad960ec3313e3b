"""benchmarks/lookalike_detections.py: boxes counted on what they land on, by the rebuilt scene."""
import numpy as np

from helpers.scripts import load_script

bench = load_script('benchmarks/lookalike_detections.py')


def test_scene_is_the_generated_frames():
    from gemini_det3d.data.synthetic_kitti import generate_frame
    scene, calib = bench.scene_of(4, 3)
    frame = generate_frame(4, 'training', 3)
    assert [o.kind for o in scene.objects] == [o.kind for o in frame['scene'].objects]
    np.testing.assert_array_equal(calib['P2'], frame['calib']['P2'])


def test_boxes_are_counted_on_what_they_land_on():
    # the first frame of seed 0..19 holding a labelled car and a look-alike
    for seed in range(20):
        centres, _, names = bench.objects_in_lidar(*bench.scene_of(seed, 0))
        if 'Car' in names and any(n.startswith('look-alike:') for n in names):
            break
    car = names.index('Car')
    lookalike = next(k for k, n in enumerate(names) if n.startswith('look-alike:'))
    box = lambda xy: [xy[0], xy[1], -1.0, 4.0, 1.8, 1.5, 0.0]
    boxes = np.array([box(centres[car]), box(centres[car] + 0.1), box(centres[lookalike]),
                      box(centres[car]), box((300.0, 0.0))])
    results = [dict(lidar_path='x/velodyne_reduced/000000.bin', pred_instances_3d=dict(
        bboxes_3d=boxes, scores_3d=np.array([0.9, 0.2, 0.8, 0.7, 0.9]),
        labels_3d=np.array([2, 2, 0, 1, 1])))]
    hits = bench.count_hits(results, seed, {'000000': 0}, score_thr=0.3)
    assert hits['Car'] == {'its class': 1}  # the 0.2 box is below the threshold
    assert hits['Pedestrian'] == {names[lookalike]: 1}
    assert hits['Cyclist'] == {'another class': 1, 'nothing': 1}
    table = bench.table(hits, 1)
    assert '| Pedestrian | 0.00 | 0.00 | 1.00 | 0.00 |' in table
