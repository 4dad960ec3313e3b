"""How fusion cost grows with the token count N: forward + backward time and peak memory.

Every fusion type runs at C channels (96: Swin-T's stage 1) on both streams' tokens
[1, N, C] for N from 1k up to 96 x 312 = 29952 (the stage-1 token count of a 384 x 1248
KITTI image), all in one run. Reference rows give the MLP half of a Swin block
(LayerNorm, C -> 4C -> C with GELU, residual) on the same tokens (both streams' 2N, as
the two-stream backbone runs it per block) and on one stream's N.

Each case runs in its own subprocess, so that one case's memory cannot hide another's
and a case that runs out of memory cannot take the benchmark down:
- time: the fastest of repeated forward + backward passes after a warm-up (one pass
  for cases over 2 s). On CPU it is the process's CPU time with one torch thread
  (``--threads 1``, the default), the figure least disturbed by other processes on a
  shared machine; the JSON also keeps the median and the wall time. On CUDA: wall time;
- peak memory: on CPU the rise of the process's peak resident set (VmHWM, reset through
  /proc/self/clear_refs) over its resident set before the passes; on CUDA
  ``torch.cuda.max_memory_allocated`` over the memory allocated before them;
- guards: a wall-clock cap per case, a memory estimate for the explicit N x N variant
  (skipped when over the cap) and an address-space-data limit (RLIMIT_DATA) in the
  child, so an allocation past the cap fails there, reported as "out of memory".

Two cross-attention rows: ``CrossAttentionFusion`` as the model runs it (PyTorch's
``scaled_dot_product_attention`` picks a fused kernel that never stores the N x N matrix:
time quadratic, memory linear) and ``CrossAttentionFusion[math]``, the textbook
computation that materialises the N x N attention matrices.

Usage::

    python benchmarks/fusion_complexity.py [--out benchmarks/results] [--quick]
        [--device cpu|cuda] [--channels 96] [--time-cap 400] [--mem-cap-gb G]

Writes ``fusion_complexity.{md,json,png}`` under ``--out`` and prints the table, the
fitted scaling exponents, the targets and the parameter counts.
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

FUSION_TYPES = ['NoFusion', 'AddFusion', 'ConcatFusion', 'TokenFusion', 'GeminiFusion',
                'CrossAttentionFusion', 'CrossAttentionFusion[math]']
MLP_REFERENCE = 'SwinMLP, both streams'
MLP_ONE_STREAM = 'SwinMLP, one stream'
MLP_ROWS = (MLP_REFERENCE, MLP_ONE_STREAM)
KITTI_STAGE1_TOKENS = 96 * 312
FULL_TOKENS = [1024, 2048, 4096, 8192, 16384, KITTI_STAGE1_TOKENS]
QUICK_TOKENS = [1024, 4096]
NUM_HEADS = 8


# --- child process: one case ------------------------------------------------------------

def _read_status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _build_case(case_type, channels):
    from torch import nn
    if case_type in MLP_ROWS:
        return nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 4 * channels),
                             nn.GELU(), nn.Linear(4 * channels, channels))
    from mmdet3d.registry import MODELS
    import gemini_det3d  # noqa: F401  (registers the fusion modules)
    base_type = case_type.split('[')[0]
    args = dict(type=base_type, embed_dims=channels)
    if base_type in ('GeminiFusion', 'CrossAttentionFusion'):
        args['num_heads'] = NUM_HEADS
    return MODELS.build(args)


def run_case(case_type, tokens, channels, device, threads=None):
    """Measure one case in this process; return a dict of the figures."""
    import contextlib

    import torch
    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    module = _build_case(case_type, channels).to(device)
    params = sum(p.numel() for p in module.parameters())
    x_rgb = torch.randn(1, tokens, channels, device=device, requires_grad=True)
    x_lidar = torch.randn(1, tokens, channels, device=device, requires_grad=True)
    height = int(math.sqrt(tokens))
    hw_shape = (height, tokens // height) if tokens % height == 0 else (1, tokens)

    def attention_kernel():
        if case_type.endswith('[math]'):
            from torch.nn.attention import SDPBackend, sdpa_kernel
            return sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext()

    def step():
        x_rgb.grad = x_lidar.grad = None
        module.zero_grad(set_to_none=True)
        with attention_kernel():
            if case_type == MLP_REFERENCE:
                both = torch.cat([x_rgb, x_lidar], dim=0)  # the same 2N tokens
                loss = (both + module(both)).sum()
            elif case_type == MLP_ONE_STREAM:
                loss = (x_rgb + module(x_rgb)).sum()
            else:
                y_rgb, y_lidar = module(x_rgb, x_lidar, hw_shape)
                loss = y_rgb.sum() + y_lidar.sum()
            loss.backward()
        if device == 'cuda':
            torch.cuda.synchronize()

    cuda = device == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        import gc
        gc.collect()
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current resident set
        base = _read_status_kb('VmRSS') * 1024

    # CPU: the process's CPU time, which other processes on a shared machine do not
    # inflate the way they inflate wall time (with one torch thread it equals the wall
    # time of an idle machine); CUDA: wall time around synchronised passes
    clock = time.perf_counter if cuda else time.process_time

    def timed_step():
        wall, cpu = time.perf_counter(), clock()
        step()
        return clock() - cpu, time.perf_counter() - wall

    first, first_wall = timed_step()
    times, walls = [first], [first_wall]
    if first < 2.0:  # fast case: the first pass was the warm-up; then 5 to 30 passes, ~2 s
        times, walls = [], []
        while len(times) < 5 or (sum(times) < 2.0 and len(times) < 30):
            t, w = timed_step()
            times.append(t)
            walls.append(w)
    peak = (torch.cuda.max_memory_allocated() if cuda else _read_status_kb('VmHWM') * 1024) - base
    return dict(time_ms=1000 * min(times), median_ms=1000 * statistics.median(times),
                wall_min_ms=1000 * min(walls), passes=len(times),
                peak_mb=max(peak, 0) / 2**20, params=params)


def child_main(args):
    if args.data_limit_gb:
        limit = int(args.data_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        result = run_case(args.case, args.tokens, args.channels, args.device, args.threads)
        result['status'] = 'ok'
    except (RuntimeError, MemoryError) as error:  # torch: RuntimeError when it cannot allocate
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        oom = 'memory' in message.lower() or 'alloc' in message.lower() or \
            isinstance(error, MemoryError)
        result = dict(status='out of memory' if oom else f'error: {message[:80]}')
    print('RESULT ' + json.dumps(result))


# --- parent: all cases, table, plot -------------------------------------------------------

def estimated_math_attention_bytes(tokens, batch=1, heads=NUM_HEADS):
    """The [math] variant keeps, per direction, the softmaxed N x N weights for backward and
    needs about three more N x N buffers while it runs (scores, their gradient, ...)."""
    per_matrix = batch * heads * tokens * tokens * 4
    return per_matrix * (2 + 3)


def run_in_subprocess(case, tokens, args):
    if case.endswith('[math]'):
        estimate = estimated_math_attention_bytes(tokens)
        if estimate > args.mem_cap_gb * 2**30:
            return dict(status=f'skipped: est. {estimate / 2**30:.0f} GiB > cap '
                               f'{args.mem_cap_gb:.0f} GiB')
    command = [sys.executable, os.path.abspath(__file__), '--child', '--case', case,
               '--tokens', str(tokens), '--channels', str(args.channels),
               '--device', args.device, '--threads', str(args.threads)]
    if args.device == 'cpu':
        # the cap on the child's data segment, plus room for torch and the imports
        command += ['--data-limit-gb', str(args.mem_cap_gb + 3)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.time_cap)
    except subprocess.TimeoutExpired:
        return dict(status=f'over time cap ({args.time_cap:.0f} s)')
    for line in done.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    if done.returncode in (-9, 137):
        return dict(status='killed (out of memory)')
    tail = (done.stderr.strip().splitlines() or ['no output'])[-1]
    return dict(status=f'error: {tail[:80]}')


def fit_exponent(points):
    """Least-squares slope of log(time) over log(N); None with fewer than two points."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def swin_block_params(channels):
    from mmdet.models.backbones.swin import SwinBlock
    block = SwinBlock(embed_dims=channels, num_heads=max(channels // 32, 1),
                      feedforward_channels=4 * channels, window_size=7)
    return sum(p.numel() for p in block.parameters())


def machine_line(args):
    import torch
    from gemini_det3d.utils.machine import cpu_name
    device = torch.cuda.get_device_name(0) if args.device == 'cuda' else cpu_name()
    return (f'machine: {device}; {os.cpu_count()} cores, torch {torch.__version__}, '
            f'{args.threads or torch.get_num_threads()} torch thread(s), '
            f'python {platform.python_version()}; '
            f'C={args.channels}, batch 1, fp32, heads {NUM_HEADS}, '
            f'time cap {args.time_cap:.0f} s/case, memory cap {args.mem_cap_gb:.0f} GiB')


def format_table(cases, tokens_list, results):
    header = ('| type | ' + ' | '.join(f'N={n}' for n in tokens_list)
              + ' | exponent (all N) | exponent (N >= 4096) |')
    lines = [header, '|' + ' --- |' * (len(tokens_list) + 3)]
    for case in cases:
        cells = []
        for n in tokens_list:
            r = results[case][n]
            cells.append(f"{r['time_ms']:.1f} ms / {r['peak_mb']:.0f} MB" if r['status'] == 'ok'
                         else r['status'])
        ok = [(n, results[case][n]['time_ms']) for n in tokens_list
              if results[case][n]['status'] == 'ok']
        all_fit, big_fit = fit_exponent(ok), fit_exponent([p for p in ok if p[0] >= 4096])
        fmt = lambda e: '-' if e is None else f'{e:.2f}'  # noqa: E731
        lines.append(f'| {case} | ' + ' | '.join(cells) + f' | {fmt(all_fit)} | {fmt(big_fit)} |')
    return '\n'.join(lines)


def plot(cases, tokens_list, results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(13, 5))
    for case in cases:
        ok = [(n, results[case][n]) for n in tokens_list if results[case][n]['status'] == 'ok']
        if not ok:
            continue
        exponent = fit_exponent([(n, r['time_ms']) for n, r in ok])
        label = f'{case} (slope {exponent:.2f})' if exponent is not None else case
        style = '--' if case in MLP_ROWS else '-'
        ax_time.plot([n for n, _ in ok], [r['time_ms'] for _, r in ok], style, marker='o',
                     label=label)
        ax_mem.plot([n for n, _ in ok], [max(r['peak_mb'], 0.1) for _, r in ok], style,
                    marker='o', label=case)
    for ax, ylabel in ((ax_time, 'forward + backward time (ms)'),
                       (ax_mem, 'peak memory rise (MB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('tokens per stream N')
        ax.set_ylabel(ylabel)
        ax.axvline(KITTI_STAGE1_TOKENS, color='grey', lw=0.8, ls=':')
        ax.grid(True, which='both', alpha=0.3)
    ax_time.legend(fontsize=8)
    ax_time.set_title('fusion cost vs tokens (log-log, fitted exponent)')
    ax_mem.set_title('peak memory vs tokens')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def targets(tokens_list, results, params, channels):
    lines = []
    n_max = tokens_list[-1]
    gem = results['GeminiFusion']
    ok = [(n, gem[n]['time_ms']) for n in tokens_list if gem[n]['status'] == 'ok']
    exp_all, exp_big = fit_exponent(ok), fit_exponent([p for p in ok if p[0] >= 4096])
    if exp_all is not None:
        worst = max(e for e in (exp_all, exp_big) if e is not None)
        lines.append(f'GeminiFusion exponent: {exp_all:.2f} (all N), '
                     + (f'{exp_big:.2f} (N >= 4096)' if exp_big is not None else '-')
                     + f' -> target <= 1.1: {"MET" if worst <= 1.1 else "MISSED"}')
    if gem[n_max]['status'] == 'ok':
        g = gem[n_max]['time_ms']
        for cross in ('CrossAttentionFusion', 'CrossAttentionFusion[math]'):
            r = results[cross][n_max]
            if r['status'] == 'ok':
                ratio = r['time_ms'] / g
                lines.append(f'{cross} / GeminiFusion time at N={n_max}: {ratio:.0f}x '
                             f'-> target >= 50x: {"MET" if ratio >= 50 else "MISSED"}')
            else:
                lines.append(f'{cross} at N={n_max}: {r["status"]} (cannot run) -> target MET')
        mlp = results[MLP_REFERENCE][n_max]
        if mlp['status'] == 'ok':
            ratio = g / mlp['time_ms']
            lines.append(f'GeminiFusion / Swin MLP time at N={n_max} (MLP on both streams, the '
                         f'same 2N tokens): {ratio:.2f}x '
                         f'-> target <= 1.5x: {"MET" if ratio <= 1.5 else "MISSED"}')
        one = results[MLP_ONE_STREAM][n_max]
        if one['status'] == 'ok':
            lines.append(f'  (against the MLP of one stream only, N tokens: '
                         f'{g / one["time_ms"]:.2f}x)')
    block = swin_block_params(channels)
    lines.append(f'parameters at C={channels}: one Swin block {block:,} (window 7, '
                 f'{max(channels // 32, 1)} heads); per fused layer: ' + ', '.join(
                     f'{k} {v:,} ({100 * v / block:.0f}%)' for k, v in params.items()))
    return lines


def parent_main(args):
    tokens_list = QUICK_TOKENS if args.quick else FULL_TOKENS
    cases = FUSION_TYPES + list(MLP_ROWS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = machine_line(args)
    print(header, flush=True)
    results = {case: {} for case in cases}
    params = {}
    for case in cases:
        for tokens in tokens_list:
            started = time.perf_counter()
            result = run_in_subprocess(case, tokens, args)
            results[case][tokens] = result
            if result['status'] == 'ok':
                params.setdefault(case.split('[')[0], result['params'])
                shown = f"{result['time_ms']:.1f} ms ({result['passes']} passes), " \
                        f"{result['peak_mb']:.0f} MB"
            else:
                shown = result['status']
            print(f'  {case:28s} N={tokens:6d}: {shown}  [{time.perf_counter() - started:.0f} s]',
                  flush=True)
    for row in MLP_ROWS:
        params.pop(row, None)

    table = format_table(cases, tokens_list, results)
    summary = targets(tokens_list, results, params, args.channels)
    metric = 'wall time' if args.device == 'cuda' else 'process CPU time'
    text = '\n'.join([header, '', f'cells: forward + backward {metric} (fastest pass) / '
                      'peak memory rise', '',
                      table, ''] + summary)
    print('\n' + text)
    (out / 'fusion_complexity.md').write_text(text + '\n')
    (out / 'fusion_complexity.json').write_text(json.dumps(
        dict(machine=header, tokens=tokens_list, results=results, params=params), indent=1))
    plot(cases, tokens_list, results, out / 'fusion_complexity.png')
    print(f'\nwrote {out / "fusion_complexity.md"}, .json and .png')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='benchmarks/results', help='output folder')
    parser.add_argument('--quick', action='store_true', help=f'only N in {QUICK_TOKENS}')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--channels', type=int, default=96)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads per case (default 1: steadiest timings on a '
                             'shared machine; 0 = torch default)')
    parser.add_argument('--time-cap', type=float, default=400.0, help='seconds per case')
    parser.add_argument('--mem-cap-gb', type=float, default=None,
                        help='memory cap per case (default: half of the machine memory)')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--case', help=argparse.SUPPRESS)
    parser.add_argument('--tokens', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--data-limit-gb', type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    if args.mem_cap_gb is None:  # half of the machine's memory, 80% of the GPU's
        if args.device == 'cuda':
            import torch
            args.mem_cap_gb = torch.cuda.get_device_properties(0).total_memory / 2**30 * 0.8
        else:
            total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
            args.mem_cap_gb = total / 2**30 / 2
    parent_main(args)


if __name__ == '__main__':
    main()
