"""gemini_det3d: GeminiFusion LiDAR-camera 3D detection as an mmdet3d plugin.

Importing the package (configs do it through ``custom_imports``) applies the CPU
compatibility shims of :mod:`gemini_det3d.compat` and registers every module of the
project in mmdet3d's registries.
"""
__version__ = '0.1.0'

from . import compat  # noqa: F401,E402  (first: the shims must be in place before models run)
from . import fusion  # noqa: F401,E402
from . import backbones  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import detectors  # noqa: F401,E402
from . import engine  # noqa: F401,E402
