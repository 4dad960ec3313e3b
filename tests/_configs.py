"""Config helpers for tests: point a config at a data root, shrink its images."""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load(rel_path):
    from gemini_det3d.utils.config import load_config
    return load_config(osp.join(REPO, rel_path))


def _datasets(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        while 'dataset' in ds:
            ds = ds.dataset
        yield loader, ds


def retarget(cfg, data_root, img_scale=None, work_dir=None):
    """Use ``data_root`` everywhere; optionally resize images to ``img_scale`` (w, h)."""
    for _, ds in _datasets(cfg):
        ds.data_root = data_root
        if img_scale is not None:
            for step in ds.pipeline:
                if step['type'] == 'Resize':
                    step['scale'] = img_scale
                elif step['type'] == 'RandomResize':  # a scale range: one fixed scale here
                    step['scale'] = [img_scale, img_scale]
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key]['ann_file'] = osp.join(data_root, 'kitti_infos_val.pkl')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    return cfg


def batch_from(cfg, loader='train_dataloader', indices=(0, 1)):
    """A collated batch from the config's own dataset and pipeline."""
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    dataset = DATASETS.build(cfg[loader].dataset)
    return pseudo_collate([dataset[i] for i in indices])


def built_model_and_batch(cfg, indices=(0, 1)):
    """The config's model in training mode (torch seeded with 0 first) and a collated batch of
    its training frames ``indices``."""
    import torch
    from mmdet3d.registry import MODELS
    batch = batch_from(cfg, 'train_dataloader', indices)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).train(), batch
