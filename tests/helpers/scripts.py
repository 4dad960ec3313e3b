"""Import a command-line script of the repository (``tools/*.py``, ``benchmarks/*.py``) as a
module, so that tests call its ``main(argv)`` and helpers in-process.

The scripts are not a package: ``python tools/x.py`` makes the script's folder importable, and
some scripts import their siblings that way (``benchmarks/end_to_end.py`` imports ``e2e_*``).
``load_script`` gives them the same folder for the time of the import only.
"""
import importlib.util
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script(relative_path: str, name: str = None):
    """``load_script('tools/ablate.py')`` -> the module (imported once, then cached).

    ``name``: the module's name where the file's own would clash (``tools/test.py`` is not
    the standard library's ``test``)."""
    path = osp.join(REPO, relative_path)
    name = name or osp.splitext(osp.basename(path))[0]
    if name in sys.modules and getattr(sys.modules[name], '__file__', None) == path:
        return sys.modules[name]
    folder = osp.dirname(path)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
