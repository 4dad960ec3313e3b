"""CPU compatibility shims for mmcv 2.1.0, spconv 2.3.8 and mmdet3d 1.4.0.

Three ops that KITTI models and KITTI evaluation use have no CPU path in these releases
(measured in ``shared/STACK.md``). :func:`apply_all` (run once by ``import gemini_det3d``)
installs a replacement for each; every replacement dispatches back to the original op for
CUDA tensors / when a CUDA device is present, so on GPU machines nothing changes.

1. ``spconv`` sparse-conv backward calls ``torch.cuda.current_stream()`` even for CPU tensors,
   which raises on a CPU-only torch. We give ``spconv.pytorch.ops`` (and ``hash``) a
   ``get_current_stream`` that returns stream 0 when CUDA is unavailable.
2. ``mmcv.ops.dynamic_scatter`` (used by ``DynamicScatter``: dynamic voxelization, MVX-Net)
   has no CPU kernel. :class:`TorchDynamicScatter` re-implements the CUDA op's semantics in
   pure torch: rows of ``coors`` with any negative entry are dropped, voxels come out in
   lexicographically sorted order of their coordinates, ``max`` / ``mean`` / ``sum`` reduce,
   and the ``max`` gradient flows to the lowest-index point that holds the maximum (as the
   CUDA backward does).
3. mmdet3d's ``kitti_eval`` computes BEV / 3D IoUs with a ``numba.cuda`` kernel
   (``rotate_iou_gpu_eval``) whose module cannot even be imported without a GPU. We register a
   CPU module of the same name whose :func:`rotate_iou_cpu_eval` has the same arguments and
   ``criterion`` semantics, compiled with numba's CPU ``njit``. mmcv's ``box_iou_rotated``
   CPU kernel is not used: its float32 polygon code returns IoUs such as 1/3 instead of 1 or
   0 for boxes whose edges nearly coincide (open-mmlab/mmcv#2621), so a prediction equal to
   its ground truth up to float round-off would miss its match (``tests/test_compat_ops.py``).
5. Also a version matter: mmdet3d 1.4's ``DataBaseSampler`` (ground-truth sampling, the
   ``ObjectSample`` transform) asks for ``np.long``, which numpy 1.24 removed (numpy 2 has it
   again, as the C ``long``): without it every GT-sampling config fails at its first frame.
   numpy < 2 gets the alias back, with numpy 2's meaning (``np.int_``).
6. spconv 2.3.8's CPU sparse convolution (gather, matmul, scatter-add per kernel offset) has
   a data race in its ``scatter_add_cpu`` kernel: the row pointers are declared outside the
   parallel lambda and shared by all threads, so with more than one torch thread some output
   rows get another row's sum. Measured against a dense ``conv3d``: a ``SubMConv3d`` at 2
   threads was off by 0.26-0.37 in a few calls out of 40 (none at 1 thread), two forward
   passes of the tiny detector's sparse encoder on the same batch differed by up to 15.7, and
   training runs with the same seed diverged from their first step. ``ops.SpconvOps`` is
   replaced by a proxy whose ``scatter_add_cpu`` is torch's ``index_add_`` (all other calls go
   to spconv); forward and backward use it, the CUDA path does not.
"""
import importlib
import math
import sys
import types
from typing import Tuple

import numba
import numpy as np
import torch

_APPLIED = {}


# --------------------------------------------------------------------------------------------
# 1. spconv backward on a CPU-only torch
# --------------------------------------------------------------------------------------------
def _cpu_safe_stream_factory(original):

    def get_current_stream():
        """Current CUDA stream handle, or 0 (the null stream) when torch has no CUDA."""
        if torch.cuda.is_available():
            return original()
        return 0

    get_current_stream.__wrapped__ = original
    return get_current_stream


def patch_spconv_stream() -> bool:
    """Make spconv's ``get_current_stream`` safe on a CPU-only torch. Returns True if patched."""
    if torch.cuda.is_available():
        return False
    try:
        cppcore = importlib.import_module('spconv.pytorch.cppcore')
    except ImportError:
        return False
    original = getattr(cppcore.get_current_stream, '__wrapped__', cppcore.get_current_stream)
    safe = _cpu_safe_stream_factory(original)
    # The modules bound the name at import time (``from ... import get_current_stream``).
    for name in ('spconv.pytorch.cppcore', 'spconv.pytorch.ops', 'spconv.pytorch.hash'):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, 'get_current_stream'):
            mod.get_current_stream = safe
    return True


# --------------------------------------------------------------------------------------------
# 2. DynamicScatter in pure torch
# --------------------------------------------------------------------------------------------
class TorchDynamicScatter(torch.autograd.Function):
    """Pure-torch ``dynamic_point_to_voxel`` with the CUDA op's semantics.

    Args (forward):
        feats (Tensor): [N, C] point features.
        coors (Tensor): [N, D] integer voxel coordinates; a row with any negative entry is
            outside the grid and ignored.
        reduce_type (str): 'max', 'mean' or 'sum'.

    Returns:
        voxel_feats (Tensor): [M, C], one row per distinct valid coordinate.
        voxel_coors (Tensor): [M, D], sorted lexicographically (same order as the CUDA op).
    """

    @staticmethod
    def forward(ctx, feats: torch.Tensor, coors: torch.Tensor,
                reduce_type: str = 'max') -> Tuple[torch.Tensor, torch.Tensor]:
        if reduce_type not in ('max', 'mean', 'sum'):
            raise ValueError(f'dynamic_scatter: unknown reduce_type {reduce_type!r}')
        valid = (coors >= 0).all(dim=1)
        point_idx = torch.nonzero(valid, as_tuple=False).squeeze(1)
        voxel_coors, inverse, counts = torch.unique(
            coors[valid], dim=0, sorted=True, return_inverse=True, return_counts=True)
        num_voxels, channels = voxel_coors.shape[0], feats.shape[1]
        src = feats[valid]
        index = inverse.unsqueeze(1).expand(-1, channels)
        if reduce_type == 'max':
            voxel_feats = feats.new_full((num_voxels, channels), float('-inf'))
            voxel_feats.scatter_reduce_(0, index, src, reduce='amax', include_self=True)
            # The CUDA backward routes each voxel/channel gradient to the smallest point index
            # that attains the maximum; find it once here.
            is_max = src == voxel_feats[inverse]
            candidate = torch.where(is_max, point_idx.unsqueeze(1).expand(-1, channels),
                                    torch.full_like(index, feats.shape[0]))
            argmax = torch.full((num_voxels, channels), feats.shape[0],
                                dtype=torch.long, device=feats.device)
            argmax.scatter_reduce_(0, index, candidate, reduce='amin', include_self=True)
            ctx.save_for_backward(argmax)
        else:
            voxel_feats = feats.new_zeros((num_voxels, channels)).index_add_(0, inverse, src)
            if reduce_type == 'mean':
                voxel_feats = voxel_feats / counts.unsqueeze(1).to(feats.dtype)
            ctx.save_for_backward(point_idx, inverse, counts)
        ctx.reduce_type = reduce_type
        ctx.num_points = feats.shape[0]
        ctx.mark_non_differentiable(voxel_coors)
        return voxel_feats, voxel_coors.to(coors.dtype)

    @staticmethod
    def backward(ctx, grad_voxel_feats, grad_voxel_coors=None):
        grad_voxel_feats = grad_voxel_feats.contiguous()
        channels = grad_voxel_feats.shape[1]
        # one spare row that collects nothing useful (index N = "no point")
        grad_feats = grad_voxel_feats.new_zeros((ctx.num_points + 1, channels))
        if ctx.reduce_type == 'max':
            (argmax, ) = ctx.saved_tensors
            grad_feats.scatter_(0, argmax, grad_voxel_feats)
        else:
            point_idx, inverse, counts = ctx.saved_tensors
            per_point = grad_voxel_feats[inverse]
            if ctx.reduce_type == 'mean':
                per_point = per_point / counts[inverse].unsqueeze(1).to(per_point.dtype)
            grad_feats[point_idx] = per_point
        return grad_feats[:-1], None, None


def _dispatching_dynamic_scatter(original):

    def dynamic_scatter(feats, coors, reduce_type='max'):
        if feats.is_cuda:
            return original(feats, coors, reduce_type)
        return TorchDynamicScatter.apply(feats, coors, reduce_type)

    dynamic_scatter.__wrapped__ = original
    return dynamic_scatter


def patch_dynamic_scatter() -> bool:
    """Route ``mmcv.ops.dynamic_scatter`` for CPU tensors to :class:`TorchDynamicScatter`."""
    try:
        scatter_points = importlib.import_module('mmcv.ops.scatter_points')
    except ImportError:
        return False
    current = scatter_points.dynamic_scatter
    original = getattr(current, '__wrapped__', current)
    patched = _dispatching_dynamic_scatter(original)
    # DynamicScatter.forward_single looks the name up in its module's globals at call time.
    scatter_points.dynamic_scatter = patched
    mmcv_ops = sys.modules.get('mmcv.ops')
    if mmcv_ops is not None:
        mmcv_ops.dynamic_scatter = patched
    return True


# --------------------------------------------------------------------------------------------
# 3. KITTI rotated IoU on CPU
# --------------------------------------------------------------------------------------------
# Exact polygon clipping in float64, not mmcv's float32 box_iou_rotated: see item 3 above.
@numba.njit(cache=True)
def _box_corners(box):
    """Corners (4, 2) of a rotated BEV box (x, y, dx, dy, angle), rotated exactly as
    mmdet3d's CUDA kernel does (``rbbox_to_corners``: clockwise for positive angles)."""
    c, s = math.cos(box[4]), math.sin(box[4])
    hx, hy = box[2] / 2.0, box[3] / 2.0
    local = np.array([[-hx, -hy], [-hx, hy], [hx, hy], [hx, -hy]])
    out = np.empty((4, 2))
    for i in range(4):
        out[i, 0] = c * local[i, 0] + s * local[i, 1] + box[0]
        out[i, 1] = -s * local[i, 0] + c * local[i, 1] + box[1]
    return out


@numba.njit(cache=True)
def _polygon_area(poly, n):
    acc = 0.0
    for i in range(n):
        j = (i + 1) % n
        acc += poly[i, 0] * poly[j, 1] - poly[j, 0] * poly[i, 1]
    return abs(acc) / 2.0


@numba.njit(cache=True)
def _convex_intersection_area(p, q):
    """Area of the intersection of two convex quadrilaterals (4, 2) by Sutherland-Hodgman
    clipping of ``p`` against every edge of ``q``."""
    # orientation of q decides which side of its edges is inside
    orient = 1.0 if _signed_area(q) >= 0 else -1.0
    poly = np.empty((16, 2))
    nxt = np.empty((16, 2))
    n = 4
    for i in range(4):
        poly[i, 0] = p[i, 0]
        poly[i, 1] = p[i, 1]
    for e in range(4):
        ax, ay = q[e, 0], q[e, 1]
        bx, by = q[(e + 1) % 4, 0], q[(e + 1) % 4, 1]
        m = 0
        for i in range(n):
            cx, cy = poly[i, 0], poly[i, 1]
            dx, dy = poly[(i + 1) % n, 0], poly[(i + 1) % n, 1]
            sc = orient * ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
            sd = orient * ((bx - ax) * (dy - ay) - (by - ay) * (dx - ax))
            if sc >= 0:
                nxt[m, 0] = cx
                nxt[m, 1] = cy
                m += 1
            if (sc >= 0) != (sd >= 0):
                t = sc / (sc - sd)
                nxt[m, 0] = cx + t * (dx - cx)
                nxt[m, 1] = cy + t * (dy - cy)
                m += 1
        n = m
        if n == 0:
            return 0.0
        for i in range(n):
            poly[i, 0] = nxt[i, 0]
            poly[i, 1] = nxt[i, 1]
    return _polygon_area(poly, n)


@numba.njit(cache=True)
def _signed_area(poly):
    acc = 0.0
    for i in range(4):
        j = (i + 1) % 4
        acc += poly[i, 0] * poly[j, 1] - poly[j, 0] * poly[i, 1]
    return acc / 2.0


@numba.njit(cache=True)
def _rotate_iou_kernel(boxes, query_boxes, criterion):
    n, k = boxes.shape[0], query_boxes.shape[0]
    out = np.zeros((n, k), dtype=np.float64)
    for i in range(n):
        ci = _box_corners(boxes[i])
        area_box = boxes[i, 2] * boxes[i, 3]
        for j in range(k):
            cj = _box_corners(query_boxes[j])
            area_query = query_boxes[j, 2] * query_boxes[j, 3]
            inter = _convex_intersection_area(cj, ci)
            # Same operand order as mmdet3d's kernel: devRotateIoUEval(query_box, box).
            if criterion == -1:
                union = area_query + area_box - inter
                out[i, j] = inter / union if union > 0 else 0.0
            elif criterion == 0:
                out[i, j] = inter / area_query if area_query > 0 else 0.0
            elif criterion == 1:
                out[i, j] = inter / area_box if area_box > 0 else 0.0
            else:
                out[i, j] = inter
    return out


def rotate_iou_cpu_eval(boxes, query_boxes, criterion=-1, device_id=0):
    """CPU twin of mmdet3d's ``rotate_iou_gpu_eval``.

    Args:
        boxes (np.ndarray): [N, 5] BEV boxes (x, y, dx, dy, angle) in KITTI camera axes
            (angle clockwise when positive).
        query_boxes (np.ndarray): [K, 5], same format.
        criterion (int): -1 IoU, 0 intersection / area of the query box, 1 intersection /
            area of the box, anything else the raw intersection area (as the CUDA kernel).
        device_id (int): ignored (kept for the same signature).

    Returns:
        np.ndarray: [N, K] float32, entry (n, k) relating ``boxes[n]`` and ``query_boxes[k]``.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    query_boxes = np.ascontiguousarray(query_boxes, dtype=np.float32)
    if boxes.shape[0] == 0 or query_boxes.shape[0] == 0:
        return np.zeros((boxes.shape[0], query_boxes.shape[0]), dtype=np.float32)
    # float64 inside, float32 out (the GPU kernel works in float32 and returns float32)
    iou = _rotate_iou_kernel(boxes.astype(np.float64), query_boxes.astype(np.float64),
                             int(criterion))
    return iou.astype(np.float32)


def _cuda_usable_by_numba() -> bool:
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001  (any driver/toolkit problem means: no usable GPU)
        return False


KITTI_ROTATE_IOU_MODULE = 'mmdet3d.evaluation.functional.kitti_utils.rotate_iou'


def patch_kitti_rotate_iou() -> bool:
    """Register a CPU ``rotate_iou`` module for mmdet3d's ``kitti_eval`` when numba has no GPU.

    ``kitti_utils/eval.py`` does ``from .rotate_iou import rotate_iou_gpu_eval`` inside its
    functions; the original module compiles a CUDA kernel at import time, so on a CPU machine
    we put our module into ``sys.modules`` under its name before anyone imports it.
    """
    if _cuda_usable_by_numba():
        return False
    existing = sys.modules.get(KITTI_ROTATE_IOU_MODULE)
    if existing is not None and getattr(existing, '__gemini_cpu__', False):
        return True
    module = types.ModuleType(KITTI_ROTATE_IOU_MODULE,
                              'CPU replacement installed by gemini_det3d.compat')
    module.__gemini_cpu__ = True
    module.rotate_iou_gpu_eval = rotate_iou_cpu_eval
    module.rotate_iou_cpu_eval = rotate_iou_cpu_eval
    sys.modules[KITTI_ROTATE_IOU_MODULE] = module
    try:
        parent = importlib.import_module('mmdet3d.evaluation.functional.kitti_utils')
        parent.rotate_iou = module
    except ImportError:
        pass
    return True


# --------------------------------------------------------------------------------------------
# 5. np.long for mmdet3d's DataBaseSampler
# --------------------------------------------------------------------------------------------
def patch_numpy_long_alias() -> bool:
    """``np.long = np.int_`` where numpy lacks it (1.24 <= numpy < 2)."""
    if 'long' in np.__dict__:
        return False
    np.long = np.int_
    return True


# --------------------------------------------------------------------------------------------
# 6. spconv's CPU scatter-add without its data race
# --------------------------------------------------------------------------------------------
def torch_scatter_add_cpu(out, inp, inds) -> None:
    """``out[inds[i]] += inp[i]`` for ``i < len(inds)``, in place, on CPU tensorview tensors.

    Args:
        out (tv.Tensor): (M, C) features to add into.
        inp (tv.Tensor): (>= N, C) rows to add (a buffer; only its first N rows are used).
        inds (tv.Tensor): (N, ) int32 row of ``out`` for each row of ``inp``.
    """
    out_t = torch.from_numpy(out.numpy_view())
    inds_t = torch.from_numpy(inds.numpy_view()).long()
    out_t.index_add_(0, inds_t, torch.from_numpy(inp.numpy_view())[:len(inds_t)])


class _SpconvOpsWithTorchScatterAdd:
    """spconv's ``SpconvOps`` namespace, except ``scatter_add_cpu`` (see item 6 above)."""

    def __init__(self, original):
        self.__wrapped__ = original
        self.scatter_add_cpu = torch_scatter_add_cpu

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


def patch_spconv_cpu_scatter_add() -> bool:
    """Route spconv's CPU scatter-add through torch. Returns True if patched."""
    try:
        ops = importlib.import_module('spconv.pytorch.ops')
    except ImportError:
        return False
    if not isinstance(ops.SpconvOps, _SpconvOpsWithTorchScatterAdd):
        ops.SpconvOps = _SpconvOpsWithTorchScatterAdd(ops.SpconvOps)
    return True


def apply_all() -> dict:
    """Apply every shim once; returns which ones are active (name -> bool)."""
    if not _APPLIED:
        _APPLIED['spconv_stream'] = patch_spconv_stream()
        _APPLIED['dynamic_scatter'] = patch_dynamic_scatter()
        _APPLIED['kitti_rotate_iou'] = patch_kitti_rotate_iou()
        _APPLIED['numpy_long_alias'] = patch_numpy_long_alias()
        _APPLIED['spconv_cpu_scatter_add'] = patch_spconv_cpu_scatter_add()
    return dict(_APPLIED)


apply_all()
