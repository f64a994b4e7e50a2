"""mmcourse: multimodal deep learning from first principles.

A small public API; nothing runs at import time (no prints, downloads or CUDA initialisation).
"""

from mmcourse.batch import Batch
from mmcourse.models import MultimodalModel
from mmcourse.runtime import Profile, pick_device, profile, seed_everything

__version__ = "0.1.0"
__all__ = ["Batch", "MultimodalModel", "Profile", "pick_device", "profile", "seed_everything", "__version__"]
