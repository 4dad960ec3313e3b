"""Does the camera picture reach the boxes? Evaluate a checkpoint three ways on the val split.

    python tools/probe_camera.py CONFIG CHECKPOINT [--cfg-options ...] [--seed S]
        [--work-dir DIR] [--out-json PATH]

1. as is;
2. swap: each frame's camera picture replaced by another frame's picture of the same split
   (a derangement drawn from ``--seed``: no frame keeps its own), resized to this frame's size
   where the sizes differ (``SwapCameraImage``);
3. blank: each picture replaced by its own mean colour (``BlankCameraImage``).

Both transforms go right after the test pipeline's ``LoadImageFromFile``, before
``LiDARToDepthImage``: points, LiDAR channels, calibration and labels stay the frame's own.
For each way it prints KITTI's AP table (mmdet3d's ``KittiMetric``, as tools/test.py), then
3D AP40 (moderate) of Car / Pedestrian / Cyclist for the three ways, the differences
``swap - as is`` and ``blank - as is`` and their sum over the classes, and how many frames'
raw predictions (scores, boxes) changed. A model that uses the camera loses AP when the
picture shows another scene; a model without a camera branch (``model.img_backbone=None``)
must show 0 everywhere, and a line says whether it does.

The checkpoint loads as in tools/test.py: torch's weights-only loader, and it must hold
exactly this config's model. The AP dicts, the differences and the permutation are written to
``--out-json`` (default ``WORK_DIR/probe_camera.json``).
"""
import argparse
import copy
import json
import logging
import os
import os.path as osp

import numpy as np

from gemini_det3d.utils.cli import run_cli

WAYS = ('as_is', 'swap', 'blank')
TITLES = {'as_is': 'as is', 'swap': 'swapped pictures', 'blank': 'blank pictures (mean colour)'}
CLASSES = ('Car', 'Pedestrian', 'Cyclist')
AP_SUFFIX = '_3D_AP40_moderate_strict'  # KittiMetric's key, after its prefixes


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='test config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--seed', type=int, default=0, help='draws the swap derangement (default 0)')
    p.add_argument('--work-dir', help='where logs and the JSON go')
    p.add_argument('--out-json', help='write the AP dicts and differences here '
                   '(default WORK_DIR/probe_camera.json)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def innermost_dataset(dataset_cfg):
    """The dataset config inside wrappers (RepeatDataset, ...), where the pipeline is."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _loads_image(step):
    return step['type'].split('.')[-1] == 'LoadImageFromFile'  # also 'mmdet3d.LoadImageFromFile'


def with_step_after_image_load(dataloader_cfg, step, config):
    """A copy of ``dataloader_cfg`` whose pipeline has ``step`` right after LoadImageFromFile."""
    from gemini_det3d.errors import GeminiInputError
    loader = copy.deepcopy(dataloader_cfg)
    pipeline = innermost_dataset(loader['dataset'])['pipeline']
    where = [i for i, t in enumerate(pipeline) if _loads_image(t)]
    if not where:
        raise GeminiInputError(f'{config}: the test pipeline loads no camera image '
                               '(no LoadImageFromFile): nothing to probe')
    pipeline.insert(where[0] + 1, step)
    return loader


def image_load_options(dataloader_cfg):
    """LoadImageFromFile's decoding options, for decoding the swapped-in pictures alike."""
    load = next((t for t in innermost_dataset(dataloader_cfg['dataset'])['pipeline']
                 if _loads_image(t)), {})
    return {k: load[k] for k in ('color_type', 'imdecode_backend', 'backend_args') if k in load}


def split_image_paths(dataloader_cfg):
    """Every frame's camera picture, in the dataset's order (``get_data_info(i)['img_path']``)."""
    from mmdet3d.registry import DATASETS
    ds_cfg = copy.deepcopy(dataloader_cfg['dataset'])
    innermost_dataset(ds_cfg)['pipeline'] = []
    dataset = DATASETS.build(ds_cfg)
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def _prediction_recorder():
    from mmengine.evaluator import BaseMetric

    class PredictionRecorder(BaseMetric):
        """Keeps every frame's raw predictions (numpy) in ``self.predictions``; no metric."""
        default_prefix = 'probe'

        def __init__(self):
            super().__init__(collect_device='cpu')
            self.predictions = []

        def process(self, data_batch, data_samples):
            for sample in data_samples:
                pred = sample['pred_instances_3d']
                boxes = pred['bboxes_3d']
                boxes = getattr(boxes, 'tensor', boxes)
                self.results.append(dict(
                    sample_idx=int(sample['sample_idx']),
                    scores_3d=np.asarray(pred['scores_3d'].detach().cpu().numpy()),
                    labels_3d=np.asarray(pred['labels_3d'].detach().cpu().numpy()),
                    bboxes_3d=np.asarray(boxes.detach().cpu().numpy())))

        def compute_metrics(self, results):
            self.predictions = list(results)
            return {}

    return PredictionRecorder()


class _KittiTableCatcher(logging.Handler):
    """Collects the AP tables KittiMetric logs (``'Results of <name>:\\n<table>'``)."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.tables = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith('Results of '):
            self.tables.append(message)


def ap40_moderate_3d(metrics):
    """``{class: 3D AP40 moderate}`` from KittiMetric's flat metric dict (nan if absent)."""
    out = {}
    for cls in CLASSES:
        hits = [v for k, v in metrics.items() if k.endswith(f'/{cls}{AP_SUFFIX}')
                or k == f'{cls}{AP_SUFFIX}']
        out[cls] = float(hits[0]) if hits else float('nan')
    return out


def differences(aps):
    """``{'swap': {class: swap - as is, ..., 'sum': ...}, 'blank': {...}}``."""
    out = {}
    for way in ('swap', 'blank'):
        d = {cls: round(aps[way][cls] - aps['as_is'][cls], 4) for cls in CLASSES}
        d['sum'] = round(sum(d.values()), 4)
        out[way] = d
    return out


def summary_table(aps, diffs):
    """The compact Markdown table: 3D AP40 moderate per class, the three ways, the differences."""
    lines = ['| 3D AP40 moderate | ' + ' | '.join(CLASSES) + ' | sum |',
             '| --- |' + ' ---: |' * (len(CLASSES) + 1)]
    for way in WAYS:
        total = sum(aps[way][c] for c in CLASSES)
        lines.append(f'| {TITLES[way]} | ' + ' | '.join(f'{aps[way][c]:.2f}' for c in CLASSES)
                     + f' | {total:.2f} |')
    for way, title in (('swap', 'swap - as is'), ('blank', 'blank - as is')):
        lines.append(f'| {title} | ' + ' | '.join(f'{diffs[way][c]:+.2f}' for c in CLASSES)
                     + f' | {diffs[way]["sum"]:+.2f} |')
    return '\n'.join(lines)


def frames_changed(reference, probed):
    """How many frames' raw predictions (scores, labels, boxes) differ from ``reference``."""
    ref = {p['sample_idx']: p for p in reference}
    changed = 0
    for p in probed:
        r = ref.get(p['sample_idx'])
        same = r is not None and all(
            r[k].shape == p[k].shape and np.array_equal(r[k], p[k])
            for k in ('scores_3d', 'labels_3d', 'bboxes_3d'))
        changed += not same
    return changed


def main(argv=None):
    """Run the probe; returns ``{'metrics': {way: {key: AP}}, 'ap40_moderate_3d': ...,
    'differences': ..., 'frames_changed': ..., 'permutation': [...], 'camera_branch': bool,
    'predictions': {way: [{'sample_idx', 'scores_3d', 'labels_3d', 'bboxes_3d'}, ...]}}``
    (everything but ``predictions`` is also written to the JSON)."""
    import torch
    from mmengine.runner import Runner

    from gemini_det3d.datasets.transforms.swap_camera_image import derangement
    from gemini_det3d.errors import GeminiInputError
    from gemini_det3d.utils.atomic_write import atomic_write_bytes
    from gemini_det3d.utils.checkpoint_check import check_checkpoint_fits, read_checkpoint
    from gemini_det3d.utils.config import load_config
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = 'none'
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs/probe_camera',
                                osp.splitext(osp.basename(args.config))[0])
    out_json = args.out_json or osp.join(cfg.work_dir, 'probe_camera.json')
    # no such file / not a checkpoint / unsafe to load: one line before the runner starts
    checkpoint = read_checkpoint(args.checkpoint)
    cfg.load_from = args.checkpoint
    camera_branch = cfg.model.get('img_backbone') is not None

    runner = Runner.from_cfg(cfg)
    check_checkpoint_fits(runner.model, checkpoint, args.checkpoint, args.config)
    del checkpoint  # the runner loads it again, into the model

    img_paths = split_image_paths(cfg.test_dataloader)
    if len(img_paths) < 2:
        raise GeminiInputError(f'{args.config}: the test split has {len(img_paths)} frame(s); '
                               'swapping pictures between frames needs at least 2')
    permutation = derangement(len(img_paths), args.seed)
    steps = {'as_is': None,
             'swap': dict(type='SwapCameraImage', img_paths=img_paths,
                          permutation=permutation.tolist(),
                          **image_load_options(cfg.test_dataloader)),
             'blank': dict(type='BlankCameraImage')}
    # built before the first way runs: a pipeline without a camera image stops here
    loaders = {way: cfg.test_dataloader if step is None else
               with_step_after_image_load(cfg.test_dataloader, step, args.config)
               for way, step in steps.items()}
    metrics, tables, predictions = {}, {}, {}
    # mmdet3d's KITTI evaluation (d3_box_overlap_kernel, numba parallel=True) leaves OpenMP,
    # and so torch, at numba's thread count (all cores); more threads sum convolutions in
    # another order, and the ways after the first would differ from it in the last bits
    # although their inputs are the same: every way runs with the threads the first had
    threads = torch.get_num_threads()
    catcher = _KittiTableCatcher()
    runner.logger.addHandler(catcher)
    try:
        for n, way in enumerate(WAYS, start=1):
            print(f'probe_camera: way {n}/{len(WAYS)}, {TITLES[way]} '
                  f'({len(img_paths)} frames)', flush=True)
            recorder = _prediction_recorder()
            # the same runner (model and weights loaded once), a fresh loop per way
            runner._test_dataloader = loaders[way]
            runner._test_evaluator = [copy.deepcopy(dict(cfg.test_evaluator)), recorder]
            runner._test_loop = copy.deepcopy(cfg.test_cfg)
            catcher.tables.clear()
            torch.set_num_threads(threads)
            result = runner.test()
            metrics[way] = {k: float(v) for k, v in result.items()}
            tables[way] = '\n'.join(catcher.tables)
            predictions[way] = recorder.predictions
    finally:
        runner.logger.removeHandler(catcher)
        torch.set_num_threads(threads)

    aps = {way: ap40_moderate_3d(metrics[way]) for way in WAYS}
    diffs = differences(aps)
    changed = {way: frames_changed(predictions['as_is'], predictions[way])
               for way in ('swap', 'blank')}
    for way in WAYS:
        print(f'\n===== KITTI AP, {TITLES[way]} =====\n{tables[way] or metrics[way]}')
    print(f'\n===== camera probe: {args.config} ({len(img_paths)} val frames, seed {args.seed}) '
          f'=====\n{summary_table(aps, diffs)}')
    n = len(predictions['as_is'])
    print(f"raw predictions changed against as is: swap {changed['swap']}/{n} frames, "
          f"blank {changed['blank']}/{n} frames")
    if not camera_branch:
        zero = not any(changed.values()) and all(
            diffs[w][c] == 0 for w in diffs for c in (*CLASSES, 'sum'))
        print('no camera branch (model.img_backbone=None): ' + (
            '0 differences, swap and blank change no prediction, as they must' if zero else
            'DIFFERENCES FOUND although the model has no camera branch: '
            'the LiDAR input depends on the picture'))

    report = dict(config=args.config, checkpoint=args.checkpoint, seed=args.seed,
                  frames=len(img_paths), permutation=permutation.tolist(),
                  camera_branch=camera_branch, metrics=metrics, ap40_moderate_3d=aps,
                  differences=diffs, frames_changed=changed)
    atomic_write_bytes(json.dumps(report, indent=1).encode(), out_json)
    print(f'json: {out_json}')
    return dict(report, predictions=predictions)


if __name__ == '__main__':
    run_cli(main)
