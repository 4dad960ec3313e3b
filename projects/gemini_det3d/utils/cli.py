"""Entry-point wrapper for tools/: bad input ends in one line on stderr, not a traceback."""
import os
import sys

from ..errors import GeminiInputError


def run_cli(main, argv=None) -> None:
    """Run ``main(argv)``; a :class:`GeminiInputError` (or a missing file) prints one line
    ``error: <message>`` and exits 2. Set ``GEMINI_DEBUG=1`` to see the traceback."""
    try:
        main(argv)
    except (GeminiInputError, FileNotFoundError) as exc:
        if os.environ.get('GEMINI_DEBUG'):
            raise
        print(f'error: {exc}', file=sys.stderr)
        sys.exit(2)
