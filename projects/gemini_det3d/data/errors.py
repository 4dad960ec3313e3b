"""The project's exception for malformed KITTI-layout files."""
from ..errors import GeminiInputError


class KittiFormatError(GeminiInputError):
    """A KITTI file is missing or malformed.

    The message is ONE line that starts with the file's path and says what is wrong, so a
    command line tool can print it as is instead of a numpy traceback.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = ' '.join(str(problem).split())  # one line, whatever the caller passed
        super().__init__(f'{self.path}: {self.problem}')
