"""Building a detector from its config and measuring one inference pass: time and peak memory.

One pass is ``model.test_step(batch)`` under ``torch.no_grad()`` in eval mode: the data
preprocessor (hard voxelization, image padding, moving the batch to the device), the image
and point branches, the head and its NMS; file reading and the CPU data pipeline are not in
it (they are the same for every two-stream model and run once, beforehand).

Peak memory:
- CPU: the rise of the process's peak resident set (``VmHWM``, reset to the current resident
  set through ``/proc/self/clear_refs``) over the resident set with the model and the batch
  loaded, in a process of its own per model. Resident pages are what a pass really costs the
  machine, including the allocations of native code (oneDNN, spconv, mmcv ops) that Python's
  ``tracemalloc`` cannot see; a fresh process per model keeps one model's allocator caches
  from hiding or inflating another's peak.
- CUDA: ``torch.cuda.max_memory_allocated`` over ``memory_allocated`` before the pass.
Both are taken on a pass after a warm-up pass, so that one-time work (lazy initialisation,
kernel selection) is not counted.
"""
import gc
import logging
import time

GIB = 2**30


def read_status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure in kB (``VmRSS``, ``VmHWM``, ``VmData``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def reset_peak_rss() -> int:
    """Reset ``VmHWM`` to the current resident set; returns that resident set in bytes."""
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return read_status_kb('VmRSS') * 1024


def peak_rss() -> int:
    """The peak resident set (bytes) since the last :func:`reset_peak_rss`."""
    return read_status_kb('VmHWM') * 1024


def build_model(config_path: str, device: str = 'cpu', seed: int = 0):
    """The config's detector, randomly initialised (no checkpoint), in eval mode on ``device``.

    Returns:
        (model, cfg)
    """
    import torch
    from gemini_det3d.utils.config import load_config
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    register_all_modules(init_default_scope=False)
    cfg = load_config(config_path)
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs one INFO line per parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.to(device).eval(), cfg


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def fusion_summary(model) -> str:
    """Where the image branch fuses the two streams, read from the built model."""
    backbone = getattr(model, 'img_backbone', None)
    if backbone is None:
        return 'no image branch'
    fusions = getattr(backbone, 'fusions', None)
    if fusions is None:
        return 'single stream (' + type(getattr(backbone, 'backbone', backbone)).__name__ + ')'
    per_stage = [len(stage) for stage in fusions]
    kind = type(fusions[0][0]).__name__
    where = ('after every Swin block' if backbone.fusion_position == 'block'
             else 'once per stage, after its last block')
    return f'{kind} x{sum(per_stage)} ({where}; per stage {per_stage})'


def timed_pass(model, batch: dict, cuda: bool) -> dict:
    """One inference pass; returns its ``wall`` and process ``cpu`` time in seconds."""
    import torch
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model.test_step(batch)
    if cuda:
        torch.cuda.synchronize()
    return dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu)


def preprocess(model, batch: dict) -> None:
    """The data preprocessor alone (hard voxelization, image padding), as a pass runs it.

    Its peak is reported beside the whole pass's: on CPU, mmcv's hard voxelization fills a
    dense int32 grid of the voxel space (1408 x 1600 x 41 for KITTI, ~370 MB), which can set
    the peak of a whole pass whatever the image branch does."""
    import torch
    with torch.no_grad():
        model.data_preprocessor(batch, False)


def cuda_peak_memory(model, batch: dict, run=None) -> int:
    """Bytes ``run(model, batch)`` (default: a whole pass) allocates on the GPU at its peak,
    beyond what was allocated before."""
    run = run or (lambda m, b: timed_pass(m, b, cuda=True))
    import torch
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run(model, batch)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def is_out_of_memory(error: BaseException) -> bool:
    message = str(error).lower()
    return isinstance(error, MemoryError) or 'out of memory' in message or \
        'not enough memory' in message or 'cannot allocate' in message or \
        'failed to allocate' in message


def short_reason(error: BaseException) -> str:
    """One line for a table cell: what went wrong in a pass."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if is_out_of_memory(error):
        return f'out of memory ({first[:90]})'
    return f'{type(error).__name__}: {first[:90]}'
