"""The gpu-check report: each check's outcome, one table and a section per check, in Markdown.

A check is a function ``check(ctx) -> CheckResult``; :func:`run_check` runs one and turns an
exception into a failed result (with the end of its traceback), so that one broken check
never takes the rest of the report down with it.
"""
import dataclasses
import signal
import time
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check.

    Attributes:
        ok (bool): the check passed.
        summary (str): one line for the table.
        details (str): Markdown for the check's own section (tables, figures, settings).
        title (str): the check's heading (filled in by :func:`run_check`).
        seconds (float): wall time of the check (filled in by :func:`run_check`).
    """
    ok: bool
    summary: str
    details: str = ''
    title: str = ''
    seconds: float = 0.0


def _raise_timeout(signum, frame):
    raise TimeoutError('the check ran past its time cap')


def run_check(title: str, check: Callable, ctx, timeout_s: Optional[float] = None
              ) -> CheckResult:
    """Run ``check(ctx)``; an exception, or running past ``timeout_s`` seconds (a SIGALRM
    in this, the main, thread), becomes a failed :class:`CheckResult`."""
    started = time.perf_counter()
    previous = None
    if timeout_s:
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        result = check(ctx)
    except Exception as error:  # noqa: BLE001  (a failing check is reported, not raised)
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        tail = ''.join(lines[-6:]).rstrip()
        first = (str(error).strip().splitlines() or [''])[0]
        if isinstance(error, TimeoutError) and timeout_s:
            first = f'cut after {timeout_s:.0f} s (its time cap)'
        result = CheckResult(False, f'{type(error).__name__}: {first}'[:300],
                             f'```\n{tail}\n```')
    finally:
        if timeout_s:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    result.title = title
    result.seconds = time.perf_counter() - started
    return result


def _cell(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def format_report(facts: Sequence[Tuple[str, str]], results: List[CheckResult]) -> str:
    """The Markdown report: the machine's facts, one row per check, then each check's details."""
    passed = sum(r.ok for r in results)
    lines = ['# gpu-check report', '', '| | |', '| --- | --- |']
    lines += [f'| {_cell(key)} | {_cell(value)} |' for key, value in facts]
    lines += ['', f'**{passed} of {len(results)} checks passed.**', '',
              '| check | result | seconds | summary |', '| --- | --- | ---: | --- |']
    lines += [f'| {_cell(r.title)} | {"PASS" if r.ok else "FAIL"} | {r.seconds:.1f} | '
              f'{_cell(r.summary)} |' for r in results]
    for r in results:
        lines += ['', f'## {r.title}: {"PASS" if r.ok else "FAIL"}', '', r.summary]
        if r.details:
            lines += ['', r.details.rstrip()]
    return '\n'.join(lines) + '\n'


def write_report(text: str, path: Path) -> Path:
    """Write the report (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table from a header and rows of cells (numbers as given)."""
    lines = ['| ' + ' | '.join(map(_cell, header)) + ' |',
             '|' + ' --- |' * len(header)]
    lines += ['| ' + ' | '.join(_cell(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)
