"""End-to-end cost per frame: inference latency and peak memory of whole detectors, one run.

    python benchmarks/end_to_end.py [--quick] [--models KEY ...] [--device auto|cpu|cuda]
        [--repeats 5] [--warmup 1] [--threads 1] [--points 0] [--out benchmarks/results]

Models (``--models``, default the first six; configs under ``configs/gemini_det3d/``):
LiDAR-only SECOND, the RGB-only image stream (MVX-Net with a single-stream Swin-T), and the
two-stream Swin-T with NoFusion, GeminiFusion, TokenFusion and cross-attention; optionally
``concat``, ``add`` and ``pointgemini``. The two references of the ratios, LiDAR-only and
NoFusion, are always measured.

All of them see the same input: one synthetic KITTI frame (a full 360-degree 64-beam scan,
108k points for the default seed, and a 1242 x 375 image; see ``e2e_frame.py``) run
through each config's own test
pipeline (image resized to the config's 1280 x 384 with kept ratio, i.e. 1272 x 384, then
padded to 1280 x 384), batch 1, fp32, random weights (nothing is downloaded), eval mode,
``torch.no_grad()``. One pass is ``model.test_step`` (voxelization, both branches, head and
NMS; see ``e2e_measure.py``).

Per device (CPU, then CUDA where one is present, unless ``--device`` says otherwise):
1. fit and memory: each model alone under a memory cap and a time cap; on CPU in a process
   of its own (forked before this process runs any model), whose peak resident-set rise
   over a warmed-up pass is the peak memory; on CUDA ``max_memory_allocated``. The peaks of
   the network alone (on inputs already voxelized) and of the image branch alone are
   measured too: on CPU mmcv's hard voxelization makes a dense grid of the whole voxel
   space (2 x 352 MiB for KITTI), which sets every model's whole-pass peak. A model that
   runs out of memory or time is reported as not fitting, with the reason;
2. latency: the models that fit, all loaded in this process, one warm-up pass each, then
   ``--repeats`` rounds in which every model runs once, round-robin (the starting model
   rotates each round), so that load from other processes falls on all models alike; the
   median per model. On CPU the clock is the process's CPU time with one torch thread (the
   figure least disturbed by other processes on a shared machine; the wall time is kept
   beside it) and only ratios mean anything: CPU times are labelled as CPU times. Absolute
   latencies are reported only from a GPU (synchronised wall time).
Ratios to LiDAR-only and to NoFusion come from the same run. Writes
``end_to_end{_quick}.md``, ``.json`` and ``.png`` (bar chart of the ratios) under ``--out``
and prints the table, the settings and the issue's target (GeminiFusion <= 1.15x NoFusion).

``--quick`` (416 x 128 image, 20k points, no warm-up, 1 repeat): a check of the machinery,
not figures.
"""
import argparse
import multiprocessing
import os
import os.path as osp
import platform
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

from e2e_frame import FrameFiles, describe_batch, make_batch, write_frame  # noqa: E402
from e2e_measure import (GIB, build_model, count_params,  # noqa: E402
                         follow_live_memory_in_resident_set, fusion_summary, is_out_of_memory,
                         memory_peaks, read_status_kb, short_reason, timed_pass)
from e2e_report import add_medians_and_ratios, write_outputs  # noqa: E402
from gemini_det3d.utils.machine import cpu_name  # noqa: E402

_CONFIGS = 'configs/gemini_det3d/'
_ABLATIONS = _CONFIGS + 'ablations/'
_TAIL = 'second-secfpn_8xb2-40e_kitti-3d-3class.py'  # the shared tail of the config names
_HEAD, _DUAL, _SINGLE = '-' + _TAIL, '-mvx_dual-swin-t-fpn_' + _TAIL, '-mvx_swin-t-fpn_' + _TAIL
# key: (row label, config); the first six are the default set, in the table's order
MODELS = {
    'lidaronly': ('LiDAR-only SECOND', _ABLATIONS + 'lidaronly' + _HEAD),
    'rgbonly': ('RGB-only image stream', _ABLATIONS + 'rgbonly' + _SINGLE),
    'nofusion': ('two-stream NoFusion', _ABLATIONS + 'nofusion' + _DUAL),
    'geminifusion': ('two-stream GeminiFusion', _CONFIGS + 'geminifusion' + _DUAL),
    'tokenfusion': ('two-stream TokenFusion', _ABLATIONS + 'tokenfusion' + _DUAL),
    'crossattn': ('two-stream cross-attention', _ABLATIONS + 'crossattn' + _DUAL),
    'concat': ('two-stream ConcatFusion', _ABLATIONS + 'concat' + _DUAL),
    'add': ('two-stream AddFusion', _ABLATIONS + 'add' + _DUAL),
    'pointgemini': ('RGB stream + point GeminiFusion', _ABLATIONS + 'pointgemini' + _SINGLE),
}
DEFAULT_MODELS = ['lidaronly', 'rgbonly', 'nofusion', 'geminifusion', 'tokenfusion', 'crossattn']
REFERENCE_MODELS = ('lidaronly', 'nofusion')
QUICK = dict(img_scale=(416, 128), points=20000, repeats=1, warmup=0)


# --- fit and peak memory of one model, on CPU, in a process of its own ---------------------

def cpu_probe(job: dict) -> dict:
    """Build the model, warm up, then measure a pass's peak resident-set rise (this process).

    ``job``: ``config``, ``frame`` (FrameFiles), ``img_scale``, ``threads``, ``warmup``
    (passes before the measured one), ``mem_cap`` (bytes the model and its passes may add
    to this process's data segment).
    """
    import resource

    import torch
    torch.set_num_threads(job['threads'])
    follow_live_memory_in_resident_set()
    limit = read_status_kb('VmData') * 1024 + job['mem_cap']
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
    try:
        model, cfg = build_model(osp.join(REPO, job['config']), 'cpu')
        batch = make_batch(cfg, job['frame'], job['img_scale'])
        for _ in range(job['warmup']):
            timed_pass(model, batch, cuda=False)
        return dict(status='ok', **memory_peaks(model, batch, cuda=False))
    except (RuntimeError, MemoryError) as error:
        return dict(status='does not fit' if is_out_of_memory(error) else 'error',
                    reason=short_reason(error))


def _probe_child(connection, job):
    try:
        connection.send(cpu_probe(job))
    finally:
        connection.close()


def run_cpu_probe(job: dict, time_cap: float) -> dict:
    """:func:`cpu_probe` in a forked child; a child past ``time_cap`` seconds is killed.

    Forked, not spawned, so that the child needs no second import of torch and mmdet3d;
    this process forks before running any model itself, so no thread pool is copied in use.
    """
    context = multiprocessing.get_context('fork')
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_probe_child, args=(sender, job), daemon=True)
    child.start()
    sender.close()
    result = None
    try:
        if receiver.poll(time_cap):
            result = receiver.recv()
    except EOFError:  # the child died without an answer
        pass
    if child.is_alive() and result is None:
        child.kill()
        child.join()
        return dict(status='does not fit', reason=f'no result within the time cap '
                                                  f'({time_cap:.0f} s for build + 2 passes)')
    child.join()
    if result is None:
        killed = child.exitcode in (-9, 137)
        return dict(status='does not fit' if killed else 'error',
                    reason='killed (out of memory)' if killed
                    else f'child process exited with code {child.exitcode}')
    return result


# --- one device: fit / memory, then interleaved latency --------------------------------------

def _record(key: str) -> dict:
    label, config = MODELS[key]
    return dict(key=key, label=label, config=config, status='ok')


def _fail(record: dict, error: BaseException) -> None:
    record['status'] = 'does not fit' if is_out_of_memory(error) else 'error'
    record['reason'] = short_reason(error)


def measure_device(device: str, keys: list, frame: FrameFiles, args) -> dict:
    """Fit, peak memory and interleaved latency of every model in ``keys`` on ``device``."""
    import torch
    cuda = device == 'cuda'
    threads_before = torch.get_num_threads()
    threads = args.threads or threads_before
    records = {key: _record(key) for key in keys}
    mem_cap_gb = args.mem_cap_gb or default_mem_cap_gb(device)
    mem_cap = int(mem_cap_gb * GIB)

    if not cuda:  # fit + memory first: fork before this process has run any model
        for key in keys:
            started = time.perf_counter()
            records[key].update(run_cpu_probe(
                dict(config=MODELS[key][1], frame=frame, img_scale=args.img_scale,
                     threads=threads, warmup=args.warmup, mem_cap=mem_cap), args.time_cap))
            _progress(device, key, 'memory', records[key], time.perf_counter() - started)
    torch.set_num_threads(threads)

    loaded, inputs = {}, {}
    for key in keys:
        record = records[key]
        if record['status'] != 'ok':
            continue
        try:
            model, cfg = build_model(osp.join(REPO, record['config']), device)
            batch = make_batch(cfg, frame, args.img_scale)
            record['params'] = count_params(model)
            record['fusion'] = fusion_summary(model)
            inputs[key] = _input_sizes(model, batch)
            for _ in range(args.warmup):
                warmup = timed_pass(model, batch, cuda)
                record['warmup_ms'] = 1000 * warmup['wall']
                if warmup['wall'] > args.time_cap:
                    raise TimeoutError(f'one pass took {warmup["wall"]:.0f} s > the time cap '
                                       f'{args.time_cap:.0f} s')
            if cuda:
                record.update(memory_peaks(model, batch, cuda=True))
                if record['peak_memory_mb'] > mem_cap_gb * 1024:
                    raise MemoryError(f'{record["peak_memory_mb"]:.0f} MB > the memory cap')
            loaded[key] = (model, batch)
            record['samples_ms'] = dict(cpu=[], wall=[])
        except (RuntimeError, MemoryError, TimeoutError) as error:
            _fail(record, error)
            if isinstance(error, TimeoutError):
                record['status'], record['reason'] = 'does not fit', str(error)
            model = batch = None  # let the model that did not fit go before the next
            if cuda:
                torch.cuda.empty_cache()
        _progress(device, key, 'warm-up', record)

    order = list(loaded)
    for repeat in range(args.repeats):
        start = repeat % max(len(order), 1)
        for key in order[start:] + order[:start]:
            if key not in loaded:
                continue
            model, batch = loaded[key]
            try:
                times = timed_pass(model, batch, cuda)
            except (RuntimeError, MemoryError) as error:
                _fail(records[key], error)
                del loaded[key]
                continue
            for clock in ('cpu', 'wall'):
                records[key]['samples_ms'][clock].append(1000 * times[clock])
        print(f'[{device}] repeat {repeat + 1}/{args.repeats} done', flush=True)
    loaded.clear()
    torch.set_num_threads(threads_before)

    clock = 'cpu' if not cuda and threads == 1 else 'wall'
    add_medians_and_ratios(records, clock)
    sizes = next(iter(inputs.values()), dict(img_shape=None, padded_shape=None,
                                              points_in_model=None, voxels=None))
    name = torch.cuda.get_device_name(0) if cuda else cpu_name()
    memory_method = (('torch.cuda.max_memory_allocated over the allocation before the pass'
                      if cuda else 'peak resident-set rise (VmHWM, reset after loading) of a '
                      'pass, one forked process per model')
                     + f', after {args.warmup} warm-up pass(es); "image branch": backbone + '
                     'neck on the padded image')
    return dict(settings=dict(device=device, device_name=name, threads=threads, clock=clock,
                              memory_method=memory_method, mem_cap_gb=mem_cap_gb, **sizes),
                models=records, input_sizes=inputs)


def default_mem_cap_gb(device: str) -> float:
    """Half the machine's memory (CPU), 80% of the GPU's (CUDA)."""
    if device == 'cuda':
        import torch
        return torch.cuda.get_device_properties(0).total_memory / GIB * 0.8
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB / 2


def _input_sizes(model, batch) -> dict:
    """Image size, padded size, points and voxels the model sees (from its preprocessor)."""
    import torch
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
    meta = data['data_samples'][0].metainfo
    voxels = data['inputs'].get('voxels', {}).get('voxels')
    sizes = describe_batch(batch)
    sizes.update(padded_shape=list(meta.get('batch_input_shape', meta.get('pad_shape', ()))),
                 voxels=None if voxels is None else int(voxels.shape[0]))
    return sizes


def _progress(device, key, phase, record, seconds=None):
    shown = record['status'] if record['status'] != 'ok' else 'ok'
    if record['status'] != 'ok':
        shown += f": {record['reason']}"
    elif phase == 'memory':
        shown += (f", peak {record['peak_memory_mb']:.0f} MB (network alone "
                  f"{record['network_peak_mb']:.0f}, image branch alone "
                  f"{record['image_branch_peak_mb']:.0f})")
    elif 'warmup_ms' in record:
        shown += f", warm-up pass {record['warmup_ms'] / 1000:.1f} s"
    took = '' if seconds is None else f'  [{seconds:.0f} s]'
    print(f'[{device}] {phase:8s} {key:13s} {shown}{took}', flush=True)


# --- command line -----------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS, metavar='KEY',
                        help=f'from {", ".join(MODELS)} (LiDAR-only and NoFusion are always '
                        f'added: the ratios need them)')
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                        help='auto: CPU, and CUDA too where a GPU is present')
    parser.add_argument('--quick', action='store_true',
                        help=f'image {QUICK["img_scale"]}, {QUICK["points"]} points, no warm-up, '
                        f'{QUICK["repeats"]} repeat: checks the machinery, not the figures')
    parser.add_argument('--repeats', type=int, default=None, help='timed rounds (default 5)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed passes per model before the timed ones (default 1)')
    parser.add_argument('--points', type=int, default=None,
                        help='keep this many points of the scan (default: all)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1: process CPU time is then the '
                        'latency of an idle core; 0 = torch default, then wall time is used)')
    parser.add_argument('--seed', type=int, default=0, help='synthetic frame seed')
    parser.add_argument('--time-cap', type=float, default=900.0,
                        help='seconds one model may take to load and run 2 passes')
    parser.add_argument('--mem-cap-gb', type=float, default=None,
                        help='memory one model may use (default: half the machine memory, '
                        '80%% of the GPU memory)')
    parser.add_argument('--out', default=osp.join(REPO, 'benchmarks', 'results'))
    args = parser.parse_args(argv)
    from gemini_det3d.errors import GeminiInputError
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise GeminiInputError(f'--models: unknown {", ".join(unknown)} '
                               f'(known: {", ".join(MODELS)})')
    for name, least in (('repeats', 1), ('points', 0), ('warmup', 0), ('threads', 0)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise GeminiInputError(f'--{name} must be >= {least}, got {value}')
    keys = [m for m in MODELS if m in args.models or m in REFERENCE_MODELS]
    args.keys = keys
    args.img_scale = QUICK['img_scale'] if args.quick else None
    if args.repeats is None:
        args.repeats = QUICK['repeats'] if args.quick else 5
    if args.warmup is None:
        args.warmup = QUICK['warmup'] if args.quick else 1
    if args.points is None:
        args.points = QUICK['points'] if args.quick else 0
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from gemini_det3d.errors import GeminiInputError
    cuda_present = torch.cuda.is_available()
    if args.device == 'cuda' and not cuda_present:
        raise GeminiInputError('--device cuda: no CUDA device is present')
    devices = {'auto': ['cpu'] + (['cuda'] if cuda_present else []),
               'cpu': ['cpu'], 'cuda': ['cuda']}[args.device]
    for key in args.keys:
        if not osp.isfile(osp.join(REPO, MODELS[key][1])):
            raise GeminiInputError(f'{MODELS[key][1]}: config file not found')
    results = {}
    with tempfile.TemporaryDirectory(prefix='e2e_frame_') as tmp:
        frame = write_frame(tmp, args.seed, args.points)
        for device in devices:
            results[device] = measure_device(device, args.keys, frame, args)
    settings = dict(
        cores=os.cpu_count(), torch=torch.__version__, python=platform.python_version(),
        quick=args.quick, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
        image_file_hw=list(frame.image_hw), scan_points=frame.num_points,
        img_scale=args.img_scale, time_cap_s=args.time_cap,
        models=args.keys)
    stem = 'end_to_end_quick' if args.quick else 'end_to_end'
    text = write_outputs(args.out, stem, settings, results)
    print('\n' + text)
    print(f'wrote {osp.join(args.out, stem)}.md, .json and .png')
    return dict(settings=settings, devices=results)


if __name__ == '__main__':
    import warnings

    # the libraries' deprecation notices, repeated by every model build, would bury the table
    warnings.simplefilter('ignore')
    from gemini_det3d.utils.cli import run_cli
    run_cli(main)
