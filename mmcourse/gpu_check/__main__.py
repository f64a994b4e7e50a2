"""``python -m mmcourse.gpu_check``: see :mod:`mmcourse.gpu_check` and ``benchmarks/GPU.md``."""

import sys

from mmcourse.gpu_check.run import main

sys.exit(main())
