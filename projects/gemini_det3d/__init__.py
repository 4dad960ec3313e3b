"""gemini_det3d: GeminiFusion LiDAR-camera 3D detection as an mmdet3d plugin.

Importing the package (configs do it through ``custom_imports``) applies the CPU
compatibility shims of :mod:`gemini_det3d.compat`, makes mmengine read local checkpoints
with torch's weights-only loader (:mod:`gemini_det3d.utils.safe_checkpoint`) and registers
every module of the project in mmdet3d's registries.
"""
__version__ = '0.1.0'

from . import compat  # noqa: F401,E402  (first: the shims must be in place before models run)
from .utils import safe_checkpoint as _safe_checkpoint  # noqa: E402

# Here and not in each tool: configs import the package (``custom_imports``) before a Runner
# reads ``load_from`` or ``resume``, so the tools, mmengine's Runner, mmdet3d's ``init_model``
# and a user's own script all read checkpoints through the weights-only loader.
_safe_checkpoint.install()
from . import fusion  # noqa: F401,E402
from . import backbones  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import detectors  # noqa: F401,E402
from . import engine  # noqa: F401,E402
