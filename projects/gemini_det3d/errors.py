"""The project's error for bad input: its message is one line naming the file and the problem."""


class GeminiInputError(ValueError):
    """Bad user input (config, checkpoint, data file). ``str(err)`` is the whole message."""
