"""gpu-check: the CUDA ops against the CPU paths the test suite runs on.

* spconv: the main config's ``SparseEncoder`` on a small scene, forward and backward, CUDA
  against CPU (same weights, same input);
* mmcv's ``dynamic_scatter`` CUDA kernel against :class:`gemini_det3d.compat.TorchDynamicScatter`;
* mmdet3d's numba.cuda ``rotate_iou_gpu_eval`` against
  :func:`gemini_det3d.compat.rotate_iou_cpu_eval`, as raw IoUs and as the KITTI AP that
  ``kitti_eval`` computes from them.
"""
import copy

import numpy as np

from gpu_report import CheckResult, markdown_table

# Largest relative difference (to the largest magnitude of the CPU result) that still counts
# as equal: float32 sums in another order through a dozen layers differ by ~1e-6..1e-5.
REL_TOL = 1e-3
# KITTI AP is in percent; the two IoU routines differ by float32 rounding only.
AP_TOL = 1e-3


def relative_error(reference, other) -> float:
    """``max|reference - other| / max|reference|`` of two tensors (moved to the CPU)."""
    reference, other = reference.detach().cpu().double(), other.detach().cpu().double()
    scale = reference.abs().max().clamp_min(1e-12)
    return float((reference - other).abs().max() / scale)


def no_tf32() -> None:
    """CUDA matmuls and convolutions in true float32, so that they can equal the CPU's."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# --- spconv --------------------------------------------------------------------------------

def small_scene(sparse_shape, channels: int, batch_size: int = 2, clusters: int = 12,
                voxels_per_cluster: int = 250, seed: int = 0):
    """Voxels of a few object-like clusters per sample.

    Returns:
        tuple: ``feats`` [N, channels] float32, ``coors`` [N, 4] int32 (batch, z, y, x), unique.
    """
    import torch
    rng = np.random.default_rng(seed)
    shape = np.asarray(sparse_shape)
    rows = []
    for b in range(batch_size):
        centres = rng.uniform([0.3, 0.1, 0.1], [0.7, 0.9, 0.9], (clusters, 3)) * shape
        for centre in centres:
            # a car at 0.05 m voxels spans ~80 x 40 x 30 voxels: spread ~ a few tens
            zyx = np.round(rng.normal(centre, [3, 15, 15], (voxels_per_cluster, 3)))
            zyx = np.clip(zyx, 0, shape - 1).astype(np.int64)
            rows.append(np.concatenate([np.full((len(zyx), 1), b), zyx], axis=1))
    coors = np.unique(np.concatenate(rows), axis=0)
    feats = rng.standard_normal((len(coors), channels)).astype(np.float32)
    return torch.from_numpy(feats), torch.from_numpy(coors.astype(np.int32))


def _encoder_pass(encoder, feats, coors, batch_size, weight):
    feats = feats.clone().requires_grad_(True)
    out = encoder(feats, coors, batch_size)
    (out * weight).sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in encoder.named_parameters()
             if p.grad is not None}
    return out.detach(), feats.grad.detach(), grads


def check_spconv(ctx) -> CheckResult:
    """The main config's SparseEncoder: CUDA forward / backward equal the CPU ones."""
    import torch
    from mmdet3d.registry import MODELS

    no_tf32()
    enc_cfg = copy.deepcopy(ctx.main_cfg.model.pts_middle_encoder)
    torch.manual_seed(0)
    cpu = MODELS.build(enc_cfg).train()
    gpu = copy.deepcopy(cpu).cuda().train()
    feats, coors = small_scene(enc_cfg['sparse_shape'], enc_cfg['in_channels'])
    batch_size = int(coors[:, 0].max()) + 1
    with torch.no_grad():
        probe = cpu(feats, coors, batch_size)
    weight = torch.randn(probe.shape, generator=torch.Generator().manual_seed(1))
    out_c, grad_c, pgrad_c = _encoder_pass(cpu, feats, coors, batch_size, weight)
    out_g, grad_g, pgrad_g = _encoder_pass(gpu, feats.cuda(), coors.cuda(), batch_size,
                                           weight.cuda())
    if set(pgrad_c) != set(pgrad_g):
        raise RuntimeError(f'parameters with gradients differ: {set(pgrad_c) ^ set(pgrad_g)}')
    errors = dict(forward=relative_error(out_c, out_g),
                  input_grad=relative_error(grad_c, grad_g),
                  weight_grad=max(relative_error(pgrad_c[k], pgrad_g[k]) for k in pgrad_c))
    ok = all(e <= REL_TOL for e in errors.values())
    rows = [(k, f'{v:.2e}') for k, v in errors.items()]
    details = (f'`{enc_cfg["type"]}` of the main config (sparse shape {enc_cfg["sparse_shape"]}, '
               f'{enc_cfg["in_channels"]} channels), train mode, {len(coors)} voxels in '
               f'{batch_size} samples; loss = sum(output * fixed random weights); TF32 off; '
               f'tolerance {REL_TOL:g} (max abs difference / max abs CPU value).\n\n'
               + markdown_table(('compared', 'relative difference'), rows))
    summary = ', '.join(f'{k} {v:.1e}' for k, v in errors.items()) + ' (max rel. diff.)'
    return CheckResult(ok, summary, details)


# --- dynamic scatter -----------------------------------------------------------------------

def random_points_in_voxels(num_points: int = 20000, channels: int = 16, seed: int = 0):
    """Point features and voxel coordinates with many shared voxels and 5% invalid rows."""
    import torch
    rng = np.random.default_rng(seed)
    coors = np.stack([rng.integers(0, 2, num_points), rng.integers(0, 4, num_points),
                      rng.integers(0, 40, num_points), rng.integers(0, 40, num_points)], 1)
    invalid = rng.random(num_points) < 0.05
    coors[invalid, rng.integers(0, 4, int(invalid.sum()))] = -1  # outside the grid
    feats = rng.standard_normal((num_points, channels)).astype(np.float32)
    return torch.from_numpy(feats), torch.from_numpy(coors.astype(np.int32))


def check_dynamic_scatter(ctx) -> CheckResult:
    """mmcv's CUDA dynamic_scatter equals the CPU shim (voxels, features, gradients)."""
    import torch
    from mmcv.ops import scatter_points

    from gemini_det3d.compat import TorchDynamicScatter
    feats, coors = random_points_in_voxels()
    rows, ok = [], True
    for reduce in ('max', 'mean', 'sum'):
        f_cpu = feats.clone().requires_grad_(True)
        f_gpu = feats.cuda().detach().requires_grad_(True)
        vf_cpu, vc_cpu = TorchDynamicScatter.apply(f_cpu, coors, reduce)
        # the project's dispatcher: CUDA tensors go to mmcv's own kernel
        vf_gpu, vc_gpu = scatter_points.dynamic_scatter(f_gpu, coors.cuda(), reduce)
        same_voxels = vc_cpu.shape == vc_gpu.shape and torch.equal(vc_cpu, vc_gpu.cpu().to(
            vc_cpu.dtype))
        grad = torch.randn(vf_cpu.shape, generator=torch.Generator().manual_seed(2))
        vf_cpu.backward(grad)
        feat_err = grad_err = float('nan')
        if same_voxels:
            vf_gpu.backward(grad.cuda())
            feat_err = relative_error(vf_cpu, vf_gpu)
            grad_err = relative_error(f_cpu.grad, f_gpu.grad)
        passed = same_voxels and feat_err <= 1e-5 and grad_err <= 1e-5
        ok &= passed
        rows.append((reduce, len(vc_cpu), len(vc_gpu), 'yes' if same_voxels else 'NO',
                     f'{feat_err:.1e}', f'{grad_err:.1e}', 'PASS' if passed else 'FAIL'))
    details = (f'{len(feats)} points, {feats.shape[1]} channels, coordinates (batch, z, y, x) '
               'in 2 x 4 x 40 x 40 with 5% rows outside the grid; CPU: '
               '`gemini_det3d.compat.TorchDynamicScatter`; CUDA: `mmcv.ops.dynamic_scatter` '
               'through the project\'s dispatcher.\n\n' + markdown_table(
                   ('reduce', 'voxels CPU', 'voxels CUDA', 'same voxels, same order',
                    'features rel. diff.', 'gradient rel. diff.', 'result'), rows))
    summary = '; '.join(f'{r[0]}: features {r[4]}, grads {r[5]}' for r in rows)
    return CheckResult(ok, summary, details)


# --- KITTI rotated IoU and AP --------------------------------------------------------------

KITTI_CLASSES = ('Car', 'Pedestrian', 'Cyclist')
_SIZES = {'Car': (3.9, 1.56, 1.6), 'Pedestrian': (0.8, 1.73, 0.6), 'Cyclist': (1.76, 1.73, 0.6)}


def random_bev_boxes(num: int, rng) -> np.ndarray:
    """[num, 5] BEV boxes (x, y, dx, dy, angle) in a 30 m square, many overlapping."""
    return np.concatenate([rng.uniform(0, 30, (num, 2)), rng.uniform(0.5, 5, (num, 2)),
                           rng.uniform(-np.pi, np.pi, (num, 1))], axis=1).astype(np.float32)


def random_kitti_annos(num_frames: int = 30, per_frame: int = 15, seed: int = 0):
    """Ground truth and noisy detections (KITTI anno dicts, camera frame), with misses and
    false positives, so that AP depends on every IoU near the thresholds."""
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(num_frames):
        names = rng.choice(KITTI_CLASSES, per_frame)
        dims = np.array([_SIZES[n] for n in names]) * rng.uniform(0.9, 1.1, (per_frame, 3))
        loc = np.stack([rng.uniform(-15, 15, per_frame), np.full(per_frame, 1.7),
                        rng.uniform(5, 45, per_frame)], 1)
        rot = rng.uniform(-np.pi, np.pi, per_frame)
        u = rng.uniform(0, 1100, per_frame)
        v = rng.uniform(100, 250, per_frame)
        bbox = np.stack([u, v, u + rng.uniform(30, 120, per_frame),
                         v + rng.uniform(30, 120, per_frame)], 1)
        gts.append(dict(name=names, truncated=np.zeros(per_frame),
                        occluded=np.zeros(per_frame, dtype=int), alpha=np.zeros(per_frame),
                        bbox=bbox, dimensions=dims, location=loc, rotation_y=rot,
                        score=np.ones(per_frame)))
        hit = rng.random(per_frame) < 0.85
        extra = 3
        d_names = np.concatenate([names[hit], rng.choice(KITTI_CLASSES, extra)])
        n = len(d_names)
        d_loc = np.concatenate([loc[hit] + rng.normal(0, [0.3, 0.05, 0.3], (hit.sum(), 3)),
                                np.stack([rng.uniform(-15, 15, extra), np.full(extra, 1.7),
                                          rng.uniform(5, 45, extra)], 1)])
        d_dims = np.concatenate([dims[hit] * rng.normal(1, 0.05, (hit.sum(), 3)),
                                 np.array([_SIZES[x] for x in d_names[hit.sum():]])])
        d_rot = np.concatenate([rot[hit] + rng.normal(0, 0.15, hit.sum()),
                                rng.uniform(-np.pi, np.pi, extra)])
        d_bbox = np.concatenate([bbox[hit] + rng.normal(0, 3, (hit.sum(), 4)),
                                 bbox[rng.integers(0, per_frame, extra)]])
        dts.append(dict(name=d_names, truncated=np.zeros(n), occluded=np.zeros(n, dtype=int),
                        alpha=np.zeros(n), bbox=d_bbox, dimensions=d_dims, location=d_loc,
                        rotation_y=d_rot, score=rng.uniform(0.05, 1.0, n)))
    return gts, dts


def check_kitti_iou(ctx) -> CheckResult:
    """mmdet3d's numba.cuda rotated IoU equals the CPU one, and so does the KITTI AP."""
    import importlib

    from mmdet3d.evaluation import kitti_eval

    from gemini_det3d.compat import KITTI_ROTATE_IOU_MODULE, rotate_iou_cpu_eval
    module = importlib.import_module(KITTI_ROTATE_IOU_MODULE)
    if getattr(module, '__gemini_cpu__', False):
        raise RuntimeError('numba.cuda sees no GPU, so gemini_det3d.compat put its CPU IoU in '
                           'place of the numba.cuda kernel: nothing to compare')
    gpu_iou = module.rotate_iou_gpu_eval
    rng = np.random.default_rng(0)
    boxes = random_bev_boxes(300, rng)
    queries = np.concatenate([boxes[:150] + rng.normal(0, 0.3, (150, 5)).astype(np.float32),
                              random_bev_boxes(130, rng)])
    rows, ok = [], True
    for criterion, meaning in ((-1, 'IoU'), (0, 'inter / area of query'),
                               (1, 'inter / area of box'), (2, 'intersection area')):
        a = gpu_iou(boxes, queries, criterion)
        b = rotate_iou_cpu_eval(boxes, queries, criterion)
        scale = max(float(np.abs(b).max()), 1e-12)
        err = float(np.abs(a.astype(np.float64) - b).max()) / scale
        ok &= err <= REL_TOL
        rows.append((criterion, meaning, f'{err:.1e}', int((b > 0).sum())))

    gts, dts = random_kitti_annos()
    _, ap_gpu = kitti_eval(gts, dts, list(KITTI_CLASSES), eval_types=['bbox', 'bev', '3d'])
    module.rotate_iou_gpu_eval = rotate_iou_cpu_eval  # eval.py imports it at each call
    try:
        _, ap_cpu = kitti_eval(gts, dts, list(KITTI_CLASSES), eval_types=['bbox', 'bev', '3d'])
    finally:
        module.rotate_iou_gpu_eval = gpu_iou
    keys = sorted(k for k in ap_gpu if ('BEV' in k or '3D' in k))
    ap_diff = max(abs(float(ap_gpu[k]) - float(ap_cpu[k])) for k in keys)
    ok &= ap_diff <= AP_TOL and set(ap_gpu) == set(ap_cpu)
    shown = [k for k in keys if k.endswith('moderate_strict') and 'AP40' in k]
    ap_rows = [(k.replace('KITTI/', ''), f'{ap_gpu[k]:.4f}', f'{ap_cpu[k]:.4f}') for k in shown]
    details = ('Raw IoUs: 300 random BEV boxes x 280 queries (half of them perturbed copies), '
               'relative difference = max abs difference / max CPU value.\n\n'
               + markdown_table(('criterion', 'meaning', 'rel. diff.', 'non-zero pairs'), rows)
               + f'\n\nKITTI AP (`kitti_eval`, 30 random frames, 15 objects each, 85% '
               f'detected with noise, 3 false positives each): {len(keys)} BEV / 3D AP values, '
               f'largest difference {ap_diff:.2e} AP points (tolerance {AP_TOL:g}).\n\n'
               + markdown_table(('AP', 'numba.cuda IoU', 'CPU IoU'), ap_rows))
    summary = (f'IoU max rel. diff. {max(float(r[2]) for r in rows):.1e}; '
               f'KITTI AP max diff. {ap_diff:.1e} over {len(keys)} BEV/3D values')
    return CheckResult(ok, summary, details)
