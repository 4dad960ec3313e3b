"""Entry-point wrapper for tools/: bad input ends in one line on stderr, not a traceback."""
import os
import sys

from ..errors import GeminiInputError

_WORKER_MARK = '\nOriginal Traceback'


def _input_error_names():
    """Class names of every input error (GeminiInputError and its subclasses, FileNotFoundError)."""
    names, todo = {'FileNotFoundError'}, [GeminiInputError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _worker_input_error(exc):
    """The one-line message of an input error raised in a data-loader worker, else None.

    torch re-raises a worker's exception with the worker's whole traceback as its message (or,
    when the class cannot be built from one string, as a RuntimeError); the original
    ``Class: message`` is the traceback's last line.
    """
    text = str(exc)
    if _WORKER_MARK not in text:
        return None
    last = text.rstrip().splitlines()[-1]
    name, _, message = last.partition(': ')
    return message if name.rsplit('.', 1)[-1] in _input_error_names() else None


def run_cli(main, argv=None) -> None:
    """Run ``main(argv)``; a :class:`GeminiInputError` (or a missing file), also one raised in
    a data-loader worker, prints one line ``error: <message>`` and exits 2. Set
    ``GEMINI_DEBUG=1`` to see the traceback."""
    try:
        main(argv)
    except (GeminiInputError, FileNotFoundError, RuntimeError) as exc:
        if os.environ.get('GEMINI_DEBUG'):
            raise
        message = _worker_input_error(exc)
        if message is None:
            if isinstance(exc, RuntimeError):
                raise
            message = str(exc)
        print(f'error: {message}', file=sys.stderr)
        sys.exit(2)
