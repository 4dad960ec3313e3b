"""The CPU shims of gemini_det3d.compat against independent references."""
import numpy as np
import pytest
import torch

import gemini_det3d  # noqa: F401  (applies the shims)
from gemini_det3d import compat


# ------------------------------------------------------------------ dynamic scatter
def numpy_dynamic_scatter(feats, coors, reduce):
    """Plain numpy reference of mmcv's CUDA dynamic_point_to_voxel (values and grads).

    Returns voxel feats (M, C), voxel coors (M, D) sorted lexicographically and, for a
    given upstream gradient G (M, C), a function computing the gradient wrt feats (N, C).
    """
    valid = np.all(coors >= 0, axis=1)
    keys = sorted({tuple(c) for c in coors[valid]})
    out = np.zeros((len(keys), feats.shape[1]))
    members = []
    for m, key in enumerate(keys):
        idx = [i for i in range(len(coors)) if valid[i] and tuple(coors[i]) == key]
        members.append(idx)
        block = feats[idx]
        out[m] = {'max': block.max(0), 'mean': block.mean(0), 'sum': block.sum(0)}[reduce]

    def grad(upstream):
        g = np.zeros_like(feats)
        for m, idx in enumerate(members):
            if reduce == 'max':
                for c in range(feats.shape[1]):
                    winner = min(i for i in idx if feats[i, c] == out[m, c])
                    g[winner, c] += upstream[m, c]
            else:
                scale = 1.0 / len(idx) if reduce == 'mean' else 1.0
                for i in idx:
                    g[i] += upstream[m] * scale
        return g

    return out, np.array(keys), grad


@pytest.mark.parametrize('reduce', ['max', 'mean', 'sum'])
@pytest.mark.parametrize('seed', [0, 1])
def test_dynamic_scatter_matches_numpy_reference(reduce, seed):
    from mmcv.ops import DynamicScatter, dynamic_scatter
    rng = np.random.default_rng(seed)
    n, c = 300, 5
    coors = rng.integers(0, 4, size=(n, 3))
    coors[rng.random(n) < 0.1, rng.integers(0, 3)] = -1  # out-of-grid points
    feats = rng.normal(size=(n, c))
    feats[5] = feats[6]  # exact ties inside a voxel, for the max gradient rule
    coors[5] = coors[6] = [1, 2, 3]
    ref_out, ref_coors, ref_grad = numpy_dynamic_scatter(feats, coors, reduce)

    f = torch.tensor(feats, dtype=torch.float64, requires_grad=True)
    out, out_coors = dynamic_scatter(f, torch.tensor(coors, dtype=torch.int32), reduce)
    np.testing.assert_array_equal(out_coors.numpy(), ref_coors)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    upstream = rng.normal(size=ref_out.shape)
    out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(f.grad.numpy(), ref_grad(upstream), rtol=1e-12, atol=1e-12)

    # the nn.Module mmdet3d uses goes through the shim too (batched coors with a batch column)
    if reduce != 'sum':
        layer = DynamicScatter([1, 1, 1], [0, 0, 0, 4, 4, 4], average_points=reduce == 'mean')
        batched = np.concatenate([np.zeros((n, 1), int), coors], 1)
        vf, vc = layer(torch.tensor(feats), torch.tensor(batched, dtype=torch.int32))
        np.testing.assert_allclose(vf.numpy(), ref_out, rtol=1e-12)
        np.testing.assert_array_equal(vc[:, 1:].numpy(), ref_coors)


def test_dynamic_scatter_rejects_unknown_reduce():
    with pytest.raises(ValueError, match='reduce_type'):
        compat.TorchDynamicScatter.apply(torch.zeros(2, 1), torch.zeros(2, 3, dtype=torch.int32),
                                         'median')


# ------------------------------------------------------------------ rotated IoU
def _shapely_polygon(box):
    from shapely.geometry import Polygon
    x, y, dx, dy, a = box
    # mmdet3d's kernel rotates the local corners with [[cos, sin], [-sin, cos]]
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    local = np.array([[-dx, -dy], [-dx, dy], [dx, dy], [dx, -dy]]) / 2
    return Polygon(local @ rot.T + [x, y])


@pytest.mark.parametrize('criterion', [-1, 0, 1, 2])
def test_rotate_iou_cpu_matches_shapely(criterion):
    rng = np.random.default_rng(criterion + 10)
    boxes = np.column_stack([rng.uniform(-3, 3, (40, 2)), rng.uniform(0.5, 4, (40, 2)),
                             rng.uniform(-np.pi, np.pi, 40)]).astype(np.float32)
    query = np.column_stack([rng.uniform(-3, 3, (30, 2)), rng.uniform(0.5, 4, (30, 2)),
                             rng.uniform(-np.pi, np.pi, 30)]).astype(np.float32)
    query[0] = boxes[0]  # identical boxes
    got = compat.rotate_iou_cpu_eval(boxes, query, criterion)
    assert got.shape == (40, 30) and got.dtype == np.float32
    expected = np.zeros_like(got, dtype=np.float64)
    for i, b in enumerate(boxes):
        pb = _shapely_polygon(b.astype(np.float64))
        for j, q in enumerate(query):
            pq = _shapely_polygon(q.astype(np.float64))
            inter = pb.intersection(pq).area
            expected[i, j] = {-1: inter / (pb.area + pq.area - inter), 0: inter / pq.area,
                              1: inter / pb.area}.get(criterion, inter)
    assert (expected > 0).sum() > 50, 'the random boxes should overlap often'
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4)
    if criterion == -1:
        assert got[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_rotate_iou_cpu_on_nearly_coinciding_and_touching_edges():
    """The cases where float32 polygon code (mmcv's box_iou_rotated: 1/3 for some of them)
    goes wrong: a box against itself up to float round-off, and boxes that share an edge."""
    rng = np.random.default_rng(7)
    n = 1500
    boxes = np.column_stack([rng.uniform(-40, 40, n), rng.uniform(0, 70, n),
                             rng.uniform(1.4, 4.5, n), rng.uniform(0.4, 2.0, n),
                             rng.uniform(-np.pi, np.pi, n)]).astype(np.float32)
    jittered = boxes + rng.normal(0, 1e-6, boxes.shape).astype(np.float32)
    touching = boxes.copy()  # moved by its own length along its own x axis (the kernel's rotation)
    touching[:, 0] += boxes[:, 2] * np.cos(boxes[:, 4])
    touching[:, 1] -= boxes[:, 2] * np.sin(boxes[:, 4])
    iou_self = np.array([compat.rotate_iou_cpu_eval(b[None], q[None], -1)[0, 0]
                         for b, q in zip(boxes, jittered)])
    assert iou_self.min() > 0.999
    for criterion in (-1, 0, 1, 2):
        got = np.array([compat.rotate_iou_cpu_eval(b[None], q[None], criterion)[0, 0]
                        for b, q in zip(boxes, touching)])
        assert np.abs(got).max() < 1e-4, criterion  # shapely: 0 up to float round-off
    assert _shapely_polygon(boxes[0]).intersection(_shapely_polygon(touching[0])).area < 1e-5


def test_kitti_eval_uses_cpu_rotate_iou():
    from mmdet3d.evaluation.functional.kitti_utils import eval as kitti_eval_module  # noqa: F401
    from mmdet3d.evaluation.functional.kitti_utils.rotate_iou import rotate_iou_gpu_eval
    if torch.cuda.is_available():
        pytest.skip('CUDA present: the original kernel is used')
    assert rotate_iou_gpu_eval is compat.rotate_iou_cpu_eval


def test_spconv_stream_shim_active_without_cuda():
    if torch.cuda.is_available():
        pytest.skip('CUDA present: spconv runs unpatched')
    from spconv.pytorch import ops
    assert ops.get_current_stream() == 0


# ------------------------------------------------------------------ GT sampling (np.long)
def test_gt_sampling_runs_on_numpy_without_long(converted_synthetic_kitti):
    """mmdet3d's ObjectSample pastes ground-truth objects from the GT database (it needs
    ``np.long``, gone from numpy 1.24 .. 1.26: restored by compat)."""
    from mmdet3d.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    root = converted_synthetic_kitti
    classes = ['Pedestrian', 'Cyclist', 'Car']
    loading = [dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
               dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True)]
    sampler = dict(type='ObjectSample', db_sampler=dict(
        data_root=root, info_path=root + 'kitti_dbinfos_train.pkl', rate=1.0,
        prepare=dict(filter_by_min_points=dict(Car=1, Pedestrian=1, Cyclist=1)),
        classes=classes, sample_groups=dict(Car=20, Pedestrian=10, Cyclist=10),
        points_loader=dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4)))

    dataset = DATASETS.build(dict(
        type='StrictKittiDataset', data_root=root, ann_file='kitti_infos_train.pkl',
        data_prefix=dict(pts='training/velodyne_reduced', img='training/image_2'),
        pipeline=[], metainfo=dict(classes=classes), modality=dict(use_lidar=True)))

    def frame(pipeline):
        from mmengine.dataset import Compose
        info = dataset.get_data_info(0)  # what Det3DDataset.prepare_data hands its pipeline
        info.update(box_type_3d=dataset.box_type_3d, box_mode_3d=dataset.box_mode_3d)
        return Compose(pipeline)(info)

    plain, sampled = frame(loading), frame(loading + [sampler])
    assert len(sampled['gt_labels_3d']) > len(plain['gt_labels_3d'])
    pasted = sampled['gt_bboxes_3d'][len(plain['gt_labels_3d']):]
    from mmdet3d.structures.ops import box_np_ops
    inside = box_np_ops.points_in_rbbox(sampled['points'].tensor[:, :3].numpy(),
                                        pasted.tensor.numpy())  # [N points, pasted boxes]
    assert inside.any(axis=0).all(), 'every pasted box brings its points'


# ------------------------------------------------------------------ spconv CPU scatter-add
def test_spconv_scatter_add_is_torch_and_adds_every_row_once():
    from spconv.pytorch import ops
    from spconv.pytorch.cppcore import torch_tensor_to_tv
    assert ops.SpconvOps.scatter_add_cpu is compat.torch_scatter_add_cpu
    assert ops.SpconvOps.gather_cpu is ops.SpconvOps.__wrapped__.gather_cpu  # the rest: spconv's
    out, buf = torch.randn(50, 8), torch.randn(30, 8)  # buffer longer than the indices
    inds = torch.randperm(50)[:20].int()
    expected = out.clone()
    expected[inds.long()] += buf[:20]
    ops.SpconvOps.scatter_add_cpu(torch_tensor_to_tv(out), torch_tensor_to_tv(buf),
                                  torch_tensor_to_tv(inds))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('subm', [True, False], ids=['SubMConv3d', 'SparseConv3d-stride2'])
def test_sparse_conv_matches_dense_conv3d_with_two_threads(subm):
    # spconv's own CPU scatter-add races between threads (compat item 6): the wrong rows
    # appeared in a few of 40 calls, so every call here is checked, forward and backward.
    import spconv.pytorch as spconv
    gen = torch.Generator().manual_seed(0)
    shape = [9, 40, 40]
    dense_active = torch.rand([2] + shape, generator=gen) < 0.3  # (B, D, H, W)
    indices = dense_active.nonzero().int().contiguous()  # (N, 4): batch, z, y, x (spconv reads
    # the raw buffer: a column-major nonzero() result would be read as garbage)
    feats = torch.randn(len(indices), 16, generator=gen)
    conv = (spconv.SubMConv3d(16, 8, 3, padding=1, bias=False) if subm else
            spconv.SparseConv3d(16, 8, 3, stride=2, padding=1, bias=False))
    weight = conv.weight.detach().permute(0, 4, 1, 2, 3)  # (out, kD, kH, kW, in) -> conv3d's

    dense_in = torch.zeros([2, 16] + shape)
    dense_in[indices[:, 0].long(), :, indices[:, 1].long(), indices[:, 2].long(),
             indices[:, 3].long()] = feats
    dense_in.requires_grad_(True)
    ref = torch.nn.functional.conv3d(dense_in, weight, stride=1 if subm else 2, padding=1)
    upstream = torch.randn(ref.shape, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(15):
            x = spconv.SparseConvTensor(feats.clone().requires_grad_(True), indices, shape, 2)
            y = conv(x)
            out_idx = y.indices.long()
            ref_rows = ref[out_idx[:, 0], :, out_idx[:, 1], out_idx[:, 2], out_idx[:, 3]]
            torch.testing.assert_close(y.features, ref_rows, atol=1e-4, rtol=1e-4)
            up_rows = upstream[out_idx[:, 0], :, out_idx[:, 1], out_idx[:, 2], out_idx[:, 3]]
            grad_feats, = torch.autograd.grad(y.features, x.features, up_rows)
            dense_in.grad = None
            mask = torch.zeros(ref.shape[0], 1, *ref.shape[2:], dtype=torch.bool)
            mask[out_idx[:, 0], 0, out_idx[:, 1], out_idx[:, 2], out_idx[:, 3]] = True
            (ref * upstream * mask).sum().backward(retain_graph=True)
            ref_grad = dense_in.grad[indices[:, 0].long(), :, indices[:, 1].long(),
                                     indices[:, 2].long(), indices[:, 3].long()]
            torch.testing.assert_close(grad_feats, ref_grad, atol=1e-4, rtol=1e-4)
    finally:
        torch.set_num_threads(threads)
