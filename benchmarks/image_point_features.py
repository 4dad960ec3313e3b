"""Where the image features at the LiDAR points get what they know: the picture or the LiDAR image?

    python benchmarks/image_point_features.py CONFIG CHECKPOINT [--num-frames N] [--seed S]
        [--json OUT] [--cfg-options ...]

For a model trained with ``PointImageSemanticLoss`` (``model.img_point_loss``), the loss's own
classifier reads the image features that PointFusion samples at each LiDAR point of the val
split and names the point's class (background or the class of the labelled box it lies in).
Its recall per class is measured five ways:

- as is;
- picture swapped: each frame's camera picture replaced by another frame's (as
  ``tools/probe_camera.py``; points, LiDAR image, calibration and labels are the frame's own);
- picture blank: the picture replaced by its mean colour;
- LiDAR image empty: the backbone's LiDAR-image channels set to "no point" (0 after the
  pipeline's normalisation), the picture kept;
- both: blank picture and empty LiDAR image (what the image branch knows from nothing).

If the features come from the picture, swapping or blanking it costs recall; if they come from
the LiDAR image, emptying that costs recall and the picture does not matter. Balanced accuracy
is the mean recall over the four point classes (chance 0.25). A second table gives each class's
precision (of the points named that class, the share that are of it): what a detector reading
these features can trust. Points outside the picture are left out, as in the loss.
"""
import argparse
import copy
import json
import os.path as osp
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))  # probe_camera's pipeline helpers

# way -> (which picture, LiDAR image emptied)
WAY_INPUTS = {'as_is': ('as_is', False), 'picture_swapped': ('swapped', False),
              'picture_blank': ('blank', False), 'lidar_image_empty': ('as_is', True),
              'both': ('blank', True)}
WAYS = tuple(WAY_INPUTS)
POINT_CLASSES = ('background', 'Pedestrian', 'Cyclist', 'Car')  # 0, then 1 + label


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--num-frames', type=int, default=None, help='first N val frames (all)')
    p.add_argument('--seed', type=int, default=0, help='draws the swap derangement')
    p.add_argument('--json', help='write the recalls here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def recall_table(confusion: np.ndarray) -> dict:
    """``confusion[true, predicted]`` counts -> recall per class and their mean."""
    totals = confusion.sum(1)
    recall = {name: (float(confusion[k, k] / totals[k]) if totals[k] else float('nan'))
              for k, name in enumerate(POINT_CLASSES)}
    present = [v for v in recall.values() if not np.isnan(v)]
    recall['balanced'] = float(np.mean(present)) if present else float('nan')
    recall['points'] = int(totals.sum())
    return recall


def precision_table(confusion: np.ndarray) -> dict:
    """``confusion[true, predicted]`` counts -> per class, the share of the points the
    classifier names that class that are of it (nan where it names none). A class's evidence is
    only as useful to the detector as it is precise: with hundreds of background points per
    pedestrian point, a small false-alarm rate on the background buries the pedestrians."""
    named = confusion.sum(0)
    return {name: (float(confusion[k, k] / named[k]) if named[k] else float('nan'))
            for k, name in enumerate(POINT_CLASSES)}


def frame_confusions(model, data, boxes, labels, empties=(False, True)) -> dict:
    """One collated frame -> ``{empty LiDAR image (bool): [4, 4] confusion}`` of the loss's
    classifier at the frame's points, for each of ``empties`` (LiDAR image as given / emptied)."""
    import torch
    from gemini_det3d.detectors.point_image_semantic_loss import (points_in_boxes_label,
                                                                  points_in_picture)
    batch = model.data_preprocessor(data, False)
    inputs, metas = batch['inputs'], [s.metainfo for s in batch['data_samples']]
    points = inputs['points']
    target = points_in_boxes_label(points[0], boxes, labels)
    fusion = model.pts_voxel_encoder.fusion_layer
    out = {}
    for empty_lidar_image in empties:
        img = inputs['imgs']
        if empty_lidar_image:
            img = img.clone()
            img[:, 3:] = 0  # "no point" after StackDepthImage's normalisation (and the padding)
        with torch.no_grad():
            img_feats = model.extract_img_feat(img, metas)
            sampled = fusion.obtain_mlvl_feats(img_feats, points, metas)
            in_image = points_in_picture(fusion, img_feats, points, metas)
            predicted = model.img_point_loss.classifier(sampled).argmax(1)
        confusion = np.zeros((len(POINT_CLASSES), len(POINT_CLASSES)), np.int64)
        np.add.at(confusion, (target[in_image].numpy(), predicted[in_image].numpy()), 1)
        out[empty_lidar_image] = confusion
    return out


def main(argv=None):
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmdet3d.registry import DATASETS, MODELS
    from tqdm import tqdm

    from gemini_det3d.datasets.transforms.swap_camera_image import derangement
    from gemini_det3d.utils.config import load_config
    from probe_camera import image_load_options, split_image_paths, with_step_after_image_load
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if not cfg.model.get('img_point_loss'):
        raise SystemExit(f'{args.config}: the model has no img_point_loss (no classifier to read '
                         'the image features with)')
    DefaultScope.get_instance('image_point_features', scope_name='mmdet3d')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()

    img_paths = split_image_paths(cfg.test_dataloader)
    permutation = derangement(len(img_paths), args.seed)
    # three pictures per frame (each frame loaded once per picture); the LiDAR image is emptied
    # on the loaded batch, so the five ways need three datasets
    pictures = {'as_is': None,
                'swapped': dict(type='SwapCameraImage', img_paths=img_paths,
                                permutation=permutation.tolist(),
                                **image_load_options(cfg.test_dataloader)),
                'blank': dict(type='BlankCameraImage')}
    datasets = {}
    for picture, step in pictures.items():
        loader = (copy.deepcopy(cfg.test_dataloader) if step is None else
                  with_step_after_image_load(cfg.test_dataloader, step, args.config))
        datasets[picture] = DATASETS.build(loader['dataset'])
    reference = datasets['as_is']
    n = len(reference) if args.num_frames is None else min(args.num_frames, len(reference))
    confusion = {way: np.zeros((4, 4), np.int64) for way in WAYS}
    for i in tqdm(range(n), desc='frames', file=sys.stdout):
        ann = reference.parse_ann_info(reference.get_data_info(i))
        keep = ann['gt_labels_3d'] >= 0  # DontCare and classes outside the three: not counted
        boxes = torch.as_tensor(ann['gt_bboxes_3d'].tensor[keep], dtype=torch.float32)
        labels = torch.as_tensor(ann['gt_labels_3d'][keep])
        for picture, dataset in datasets.items():
            wanted = {way: empty for way, (p, empty) in WAY_INPUTS.items() if p == picture}
            frame = frame_confusions(model, pseudo_collate([dataset[i]]), boxes, labels,
                                     empties=tuple(sorted(set(wanted.values()))))
            for way, empty_lidar_image in wanted.items():
                confusion[way] += frame[empty_lidar_image]
    recalls = {way: recall_table(confusion[way]) for way in WAYS}
    print(f'\n===== image features at the points: {args.config}, {n} val frames =====')
    print('| way | ' + ' | '.join(POINT_CLASSES) + ' | balanced | points |')
    print('| --- |' + ' ---: |' * (len(POINT_CLASSES) + 2))
    for way in WAYS:
        r = recalls[way]
        print(f'| {way.replace("_", " ")} | ' + ' | '.join(f'{r[c]:.3f}' for c in POINT_CLASSES)
              + f' | {r["balanced"]:.3f} | {r["points"]} |')
    precisions = {way: precision_table(confusion[way]) for way in WAYS}
    print('\nprecision: of the points named each class, the share that are of it')
    print('| way | ' + ' | '.join(POINT_CLASSES) + ' |')
    print('| --- |' + ' ---: |' * len(POINT_CLASSES))
    for way in WAYS:
        r = precisions[way]
        print(f'| {way.replace("_", " ")} | ' + ' | '.join(f'{r[c]:.3f}' for c in POINT_CLASSES)
              + ' |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, frames=n,
                           recalls=recalls, precisions=precisions,
                           confusion={w: c.tolist() for w, c in confusion.items()}), f, indent=1)
    return recalls


if __name__ == '__main__':
    main()
