"""gpu-check: the end-to-end inference latency table on the GPU (``benchmarks/end_to_end.py``).

GeminiFusion against its two references, NoFusion and LiDAR-only, at KITTI input size; the
benchmark itself measures (warm-up, interleaved repeats, synchronised wall time) and writes
its Markdown table, which goes into the report as it is.
"""
import json
import subprocess
from pathlib import Path

from gpu_report import CheckResult

MODELS = ('geminifusion', 'nofusion', 'lidaronly')


def check_latency(ctx) -> CheckResult:
    """``benchmarks/end_to_end.py --device cuda`` for GeminiFusion, NoFusion and LiDAR-only."""
    out = Path(ctx.out_dir) / 'end_to_end'
    cmd = [ctx.python, str(Path(ctx.repo) / 'benchmarks' / 'end_to_end.py'), '--device', 'cuda',
           '--models', *MODELS, '--out', str(out)]
    shown = 'python benchmarks/end_to_end.py ' + ' '.join(cmd[2:])
    done = subprocess.run(cmd, cwd=ctx.repo, capture_output=True, text=True, timeout=420)
    table = out / 'end_to_end.md'
    if done.returncode != 0 or not table.is_file():
        tail = '\n'.join((done.stderr or done.stdout).strip().splitlines()[-15:])
        return CheckResult(False, f'benchmarks/end_to_end.py exited with {done.returncode}',
                           f'`{shown}`\n\n```\n{tail}\n```')
    records = json.loads((out / 'end_to_end.json').read_text())['devices']['cuda']['models']
    measured = {key: r for key, r in records.items() if r.get('status') == 'ok'}
    parts = []
    for key in MODELS:
        record = records.get(key, {})
        if key in measured:
            parts.append(f'{key} {record["median_ms"]["wall"]:.1f} ms')
        else:
            parts.append(f'{key} {record.get("status", "missing")}')
    text = table.read_text()
    # the benchmark's own headings one level down, under this check's heading
    body = '\n'.join(('#' + line) if line.startswith('#') else line for line in text.splitlines())
    return CheckResult(len(measured) == len(MODELS), 'median latency: ' + ', '.join(parts),
                       f'`{shown}` (also {out}/end_to_end.json, .png)\n\n{body}')
