"""Ratios, Markdown table, JSON and bar chart of the end-to-end benchmark's measurements.

The measurements of one device are a dict ``{model key: record}``; a measured record has
``status == 'ok'``, ``samples_ms = {clock: [one time per repeat]}``, ``peak_memory_mb``
(whole pass), ``network_peak_mb`` (the network alone, on preprocessed inputs) and
``image_branch_peak_mb`` (image backbone + neck alone; 0 without an image branch);
any other status (``'does not fit'``, ``'error'``) comes with a ``reason``. Ratios are
always the model's median divided by the reference model's median of the same clock, from
the same run (and its peak memory divided by the reference's peak memory).
"""
import json
import statistics

REFERENCES = (('lidaronly', 'LiDAR-only'), ('nofusion', 'NoFusion'))
TARGET_MODEL, TARGET_REFERENCE, TARGET_RATIO = 'geminifusion', 'nofusion', 1.15
# ratio name: (record field, title)
MEMORY_RATIOS = {'memory': ('peak_memory_mb', 'peak memory, whole pass'),
                 'network_memory': ('network_peak_mb', 'peak memory, network alone'),
                 'image_branch_memory': ('image_branch_peak_mb', 'peak memory, image branch')}


def add_medians_and_ratios(records: dict, clock: str) -> None:
    """Fill in ``median_ms`` per clock and ``ratios``: time on ``clock`` and the peak memory
    of the whole pass (``memory``), of the network alone (``network_memory``) and of the
    image branch alone (``image_branch_memory``).

    ``ratios = {'time': {reference: x}, 'memory': {...}, ...}``; a ratio is None where the
    model or the reference was not measured, or either figure is 0 (no image branch).
    """
    for record in records.values():
        if record['status'] == 'ok':
            record['median_ms'] = {name: statistics.median(values)
                                   for name, values in record['samples_ms'].items()}
    for record in records.values():
        if record['status'] != 'ok':
            continue
        record['ratio_clock'] = clock
        record['ratios'] = {name: {} for name in ('time', *MEMORY_RATIOS)}
        for reference, _ in REFERENCES:
            ref = records.get(reference)
            ok = ref is not None and ref['status'] == 'ok'
            record['ratios']['time'][reference] = (
                record['median_ms'][clock] / ref['median_ms'][clock] if ok else None)
            for ratio, (field, _) in MEMORY_RATIOS.items():
                # 0 MB: no image branch, nothing to compare
                measured = ok and ref[field] > 0 and record[field] > 0
                record['ratios'][ratio][reference] = (
                    record[field] / ref[field] if measured else None)


def target_line(records: dict, device: str) -> str:
    """The issue's target: GeminiFusion at most 1.15x the NoFusion two-stream model."""
    model, ref = records.get(TARGET_MODEL), records.get(TARGET_REFERENCE)
    if not model or not ref or model['status'] != 'ok' or ref['status'] != 'ok':
        return 'target (GeminiFusion <= 1.15x NoFusion): not measured in this run'
    ratios = model['ratios']
    time_ratio = ratios['time'][TARGET_REFERENCE]
    verdict = 'MET' if time_ratio <= TARGET_RATIO else 'MISSED'
    what = 'CPU time' if device == 'cpu' else 'GPU latency'
    memory = ', '.join(f'{_ratio(ratios[name][TARGET_REFERENCE])}x ({title.split(", ")[1]})'
                       for name, (_, title) in MEMORY_RATIOS.items())
    return (f'target: GeminiFusion / NoFusion {what} {time_ratio:.2f}x (<= {TARGET_RATIO}x: '
            f'{verdict}); peak memory {memory}')


def _ratio(value) -> str:
    return '-' if value is None else f'{value:.2f}'


def time_column_titles(device: str, clock: str, repeats: int):
    if device == 'cpu':
        main = ('CPU time per frame, ms (process CPU time, CPU only, median of '
                f'{repeats})' if clock == 'cpu' else
                f'CPU wall time per frame, ms (CPU only, median of {repeats})')
        return main, 'CPU wall, ms'
    return f'GPU latency per frame, ms (median of {repeats})', 'process CPU, ms'


def format_table(records: dict, device: str, clock: str, repeats: int) -> str:
    """Markdown: one row per requested model, measured or marked as not fitting."""
    other_clock = 'wall' if clock == 'cpu' else 'cpu'
    main_title, other_title = time_column_titles(device, clock, repeats)
    memory = 'peak memory rise, MB' if device == 'cpu' else 'peak GPU memory, MB'
    header = (f'| model | image-branch fusion | params (M) | {main_title} | {other_title} | '
              f'time x LiDAR-only | time x NoFusion | {memory}: whole pass | '
              'x LiDAR-only | x NoFusion | network alone, MB | x LiDAR-only | x NoFusion | '
              'image branch alone, MB | x NoFusion |')
    lines = [header, '|' + ' --- |' * 15]
    for record in records.values():
        head = (f"| {record['label']} | {record.get('fusion', '-')} | "
                + (f"{record['params'] / 1e6:.1f}" if record.get('params') else '-'))
        if record['status'] != 'ok':
            lines.append(f"{head} | {record['status']}: {record['reason']} |" + ' - |' * 11)
            continue
        ratios = record['ratios']
        cells = [f"{record['median_ms'][clock]:.1f}", f"{record['median_ms'][other_clock]:.1f}"]
        cells += [_ratio(ratios['time'][ref]) for ref, _ in REFERENCES]
        for ratio, (field, _) in MEMORY_RATIOS.items():
            cells.append(f'{record[field]:.0f}')
            refs = ('nofusion',) if ratio == 'image_branch_memory' else ('lidaronly', 'nofusion')
            cells += [_ratio(ratios[ratio][ref]) for ref in refs]
        lines.append(f"{head} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def settings_lines(settings: dict, device_settings: dict) -> list:
    s, d = settings, device_settings
    return [
        f"device: {d['device_name']} ({d['device']}); {s['cores']} cores, torch {s['torch']}, "
        f"{d['threads']} torch thread(s); python {s['python']}",
        f"input: one synthetic KITTI frame, image file {s['image_file_hw'][1]}x"
        f"{s['image_file_hw'][0]} -> {d['img_shape'][1]}x{d['img_shape'][0]} after the test "
        f"pipeline's Resize, padded to {d['padded_shape'][1]}x{d['padded_shape'][0]}; "
        f"{s['scan_points']} points in the scan, {d['points_in_model']} after the "
        f"pipeline's range filter, {d['voxels']} voxels; batch 1, fp32, random weights",
        f"timing: {s['warmup']} warm-up pass(es), then {s['repeats']} repeat(s) with the "
        f"models interleaved round-robin (start rotated each repeat); median per model; "
        f"ratios from the {'process CPU time' if d['clock'] == 'cpu' else 'wall time'}",
        f"memory: {d['memory_method']}; caps: {d['mem_cap_gb']:.1f} GiB, "
        f"{s['time_cap_s']:.0f} s per model",
    ]


def write_outputs(out_dir, stem: str, settings: dict, devices: dict) -> str:
    """Write ``{stem}.md``, ``{stem}.json`` and ``{stem}.png``; returns the Markdown text."""
    from pathlib import Path
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for device, result in devices.items():
        parts += [f'## {device}', '']
        parts += [f'- {line}' for line in settings_lines(settings, result['settings'])]
        if device == 'cpu':
            parts.append('- CPU times are CPU figures, not a GPU latency; on a shared machine '
                         'only the ratios are meaningful')
        parts += ['', format_table(result['models'], device, result['settings']['clock'],
                                   settings['repeats']), '',
                  target_line(result['models'], device), '']
    text = '\n'.join(['# End-to-end inference cost per frame', ''] + parts)
    (out / f'{stem}.md').write_text(text)
    (out / f'{stem}.json').write_text(json.dumps(dict(settings=settings, devices=devices),
                                                 indent=1))
    plot_ratios(devices, out / f'{stem}.png')
    return text


def plot_ratios(devices: dict, path) -> None:
    """Per device: time and memory ratios to LiDAR-only and to NoFusion, one bar each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    quantities = [('time', 'time')] + [(name, title)
                                       for name, (_, title) in MEMORY_RATIOS.items()]
    fig, axes = plt.subplots(2 * len(devices), 2, figsize=(15, 10 * len(devices)),
                             squeeze=False)
    for row, (device, result) in enumerate(devices.items()):
        records = list(result['models'].values())
        x = np.arange(len(records))
        for col, (quantity, title) in enumerate(quantities):
            ax = axes[2 * row + col // 2, col % 2]
            for i, (reference, name) in enumerate(REFERENCES):
                values = [r['ratios'][quantity][reference] if r['status'] == 'ok' else None
                          for r in records]
                bars = ax.bar(x + (i - 0.5) * 0.38, [v or 0 for v in values], 0.38,
                              label=f'x {name}')
                for bar, value in zip(bars, values):
                    ax.annotate('n/a' if value is None else f'{value:.2f}',
                                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha='center', va='bottom', fontsize=7)
            for i, r in enumerate(records):
                if r['status'] != 'ok':
                    ax.text(i, 0.05, r['status'], rotation=90, ha='center', va='bottom',
                            fontsize=8, color='crimson')
            if quantity == 'time':
                ax.axhline(TARGET_RATIO, color='grey', ls=':', lw=1,
                           label=f'target: GeminiFusion <= {TARGET_RATIO}x NoFusion')
            ax.axhline(1.0, color='black', lw=0.6)
            ax.set_xticks(x, [r['label'] for r in records], rotation=20, ha='right',
                          fontsize=8)
            if quantity == 'time':
                title = 'CPU time' if device == 'cpu' else 'GPU latency'
            ax.set_title(f'{device}: {title} ratio')
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
