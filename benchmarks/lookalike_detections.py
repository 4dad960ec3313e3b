"""What a model's confident boxes land on in the synthetic world: labelled objects of their
class, labelled objects of another class, unlabelled look-alikes (by kind), or nothing.

    python benchmarks/lookalike_detections.py RESULTS.pkl --data-root ROOT --seed SEED
        [--score-thr 0.3] [--split val] [--json OUT]

RESULTS.pkl is what ``tools/test.py --out`` writes for the split; ROOT and SEED are the
generated set's (``tools/make_synthetic_kitti.py``): each frame's scene is rebuilt from the
seed (no ray casting) to know every object, labelled or not. A box counts on an object when
its BEV centre is nearest to that object's and within the object's own half diagonal plus
0.5 m; "nothing or other" also counts unlabelled things that are not look-alikes (walls,
bushes, traffic behind). A model that cannot tell look-alikes from the classes it detects puts many boxes on
them; the camera is what tells a bollard from a pedestrian in this world.
"""
import argparse
import json
import os.path as osp
import sys
from collections import Counter

import numpy as np

CLASSES = ('Pedestrian', 'Cyclist', 'Car')  # the label order of the 3-class KITTI configs


def scene_of(seed: int, index: int):
    """The generating scene of training frame ``index`` and its calibration (no LiDAR cast)."""
    from gemini_det3d.data.synthetic_kitti import frame_scene
    return frame_scene(seed, 'training', index)


def objects_in_lidar(scene, calib):
    """``(centres [M, 2] LiDAR BEV, radii [M], names [M])``: an object's name is its label, or
    ``'look-alike:<kind>'`` when unlabelled (``'other:<kind>'`` for walls, bushes, traffic)."""
    from gemini_det3d.data import kitti_io
    from gemini_det3d.data.synthetic_scene import LOOKALIKES
    cam2lidar = np.linalg.inv(kitti_io.lidar2cam(calib))
    centres, radii, names = [], [], []
    for obj in scene.objects:
        centre = cam2lidar @ np.append(obj.center, 1.0)
        centres.append(centre[:2])
        radii.append(0.5 * float(np.hypot(obj.lhw[0], obj.lhw[2])))
        if obj.label:
            names.append(obj.label)
        else:
            names.append(('look-alike:' if obj.kind in LOOKALIKES else 'other:') + obj.kind)
    return np.array(centres).reshape(-1, 2), np.array(radii), names


def count_hits(results, seed, frame_index, score_thr):
    """``{predicted class: Counter(what the boxes land on)}`` over the results' frames."""
    from gemini_det3d.visualization.prediction_source import frame_name_of
    hits = {c: Counter() for c in CLASSES}
    for result in results:
        pred = result['pred_instances_3d']
        boxes = np.asarray(pred['bboxes_3d'].tensor if hasattr(pred['bboxes_3d'], 'tensor')
                           else pred['bboxes_3d'])
        scores, labels = np.asarray(pred['scores_3d']), np.asarray(pred['labels_3d'])
        name = frame_name_of(result['lidar_path'])
        centres, radii, names = objects_in_lidar(*scene_of(seed, frame_index[name]))
        for box, score, label in zip(boxes, scores, labels):
            if score < score_thr:
                continue
            if len(centres):
                dist = np.linalg.norm(centres - box[:2], axis=1)
                k = int(dist.argmin())
            if not len(centres) or dist[k] > radii[k] + 0.5:
                hits[CLASSES[label]]['nothing'] += 1
            elif names[k] == CLASSES[label]:
                hits[CLASSES[label]]['its class'] += 1
            elif names[k] in CLASSES:
                hits[CLASSES[label]]['another class'] += 1
            else:
                hits[CLASSES[label]][names[k]] += 1
    return hits


def table(hits, frames):
    cols = ['its class', 'another class', 'look-alikes', 'nothing or other']
    lines = ['| boxes per frame | ' + ' | '.join(cols) + ' | look-alike kinds |',
             '| --- |' + ' ---: |' * len(cols) + ' --- |']
    for cls, counter in hits.items():
        lookalike = {k.split(':', 1)[1]: v for k, v in counter.items() if k.startswith('look-alike:')}
        row = [counter['its class'], counter['another class'], sum(lookalike.values()),
               counter['nothing'] + sum(v for k, v in counter.items() if k.startswith('other:'))]
        kinds = ', '.join(f'{k} {v / frames:.2f}' for k, v in sorted(lookalike.items(), key=lambda x: -x[1]))
        lines.append(f'| {cls} | ' + ' | '.join(f'{v / frames:.2f}' for v in row) + f' | {kinds} |')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results')
    p.add_argument('--data-root', required=True)
    p.add_argument('--seed', type=int, required=True, help='the seed the set was generated with')
    p.add_argument('--split', default='val')
    p.add_argument('--score-thr', type=float, default=0.3)
    p.add_argument('--json')
    args = p.parse_args(argv)
    import pickle
    split_file = osp.join(args.data_root, 'ImageSets', f'{args.split}.txt')
    for path in (args.results, split_file):
        if not osp.isfile(path):
            sys.exit(f'error: {path}: file not found')
    with open(args.results, 'rb') as f:
        results = pickle.load(f)
    frame_index = {name: int(name) for name in open(split_file).read().split()}
    hits = count_hits(results, args.seed, frame_index, args.score_thr)
    print(f'{args.results}: boxes with score >= {args.score_thr} on {len(results)} frames\n')
    print(table(hits, len(results)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({c: dict(v) for c, v in hits.items()}, f, indent=1)


if __name__ == '__main__':
    main()
