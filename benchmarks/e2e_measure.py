"""Building a detector from its config and measuring one inference pass: time and peak memory.

One pass is ``model.test_step(batch)`` under ``torch.no_grad()`` in eval mode: the data
preprocessor (hard voxelization, image padding, moving the batch to the device), the image
and point branches, the head and its NMS; file reading and the CPU data pipeline are not in
it (they are the same for every two-stream model and run once, beforehand).

Peak memory:
- CPU: the rise of the process's peak resident set (``VmHWM``, reset to the current resident
  set through ``/proc/self/clear_refs``) over the resident set with the model and the batch
  loaded, in a process of its own per model, with glibc set to map and unmap every block
  over 64 KiB (:func:`follow_live_memory_in_resident_set`). Resident pages are what a pass
  really costs the machine, including the allocations of native code (oneDNN, spconv, mmcv
  ops) that Python's ``tracemalloc`` cannot see; a fresh process per model keeps one
  model's allocator state from hiding or inflating another's peak.
- CUDA: ``torch.cuda.max_memory_allocated`` over ``memory_allocated`` before the pass.
Both are taken after warm-up passes, so that one-time work (lazy initialisation, kernel
selection) is not counted, for the whole pass and for the network alone (see
:func:`memory_peaks`).
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
    _release_free_heap()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return read_status_kb('VmRSS') * 1024


def _release_free_heap() -> None:
    """Give glibc's free heap pages back, so that reusing them counts in the resident set."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to release
        pass


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
    # latency and memory do not depend on the weights: no ImageNet download
    if cfg.model.get('img_backbone') is not None:
        cfg.model.img_backbone.init_cfg = None
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


def _peak_bytes(run, cuda: bool) -> int:
    """Peak memory ``run()`` adds to what is allocated (CUDA) or resident (CPU) before it."""
    import torch
    if cuda:
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = reset_peak_rss()
    with torch.no_grad():
        run()
    if cuda:
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return peak_rss() - base


def memory_peaks(model, batch: dict, cuda: bool) -> dict:
    """Peak memory (MB) of a whole pass, of the network alone and of the image branch alone.

    On CPU the whole pass peaks inside the data preprocessor: mmcv's CPU hard voxelization
    makes a dense int32 grid of the whole voxel space (``-ones``: two 352 MiB buffers for
    KITTI's 1408 x 1600 x 41), whatever the network does (mmcv's CUDA voxelization has no
    such grid). The network alone runs on inputs already voxelized and padded; the image
    branch alone (backbone + neck, where the fusion variants differ) on the padded image.

    Returns:
        dict: ``peak_memory_mb`` (whole pass), ``network_peak_mb``, ``image_branch_peak_mb``
        (0 without an image branch).
    """
    import torch
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
    metas = [sample.metainfo for sample in data['data_samples']]
    image = 0
    if getattr(model, 'img_backbone', None) is not None:
        image = _peak_bytes(lambda: model.extract_img_feat(data['inputs']['imgs'], metas), cuda)
    network = _peak_bytes(lambda: model(**data, mode='predict'), cuda)
    del data
    whole = _peak_bytes(lambda: model.test_step(batch), cuda)
    return dict(peak_memory_mb=whole / 2**20, network_peak_mb=network / 2**20,
                image_branch_peak_mb=image / 2**20)


def follow_live_memory_in_resident_set() -> None:
    """Make glibc map every allocation over 64 KiB on its own and unmap it when freed.

    By default glibc serves even large blocks from its heap once some have been freed
    (its mmap threshold grows) and keeps freed heap memory, so the resident set lags behind
    the live memory by whatever the heap's fragmentation happens to be: repeated
    measurements of one model's peak spread by ~50 MB. With a fixed threshold the peak
    resident set follows the tensors that are alive (measured spread < 1 MB). For the
    memory-probe process only: it makes allocation slower.
    """
    import ctypes
    libc = ctypes.CDLL('libc.so.6')
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (also stops its dynamic growth)
    libc.malloc_trim(0)


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
