"""xray_exp: Hydra experiment sweeps for Ultralytics YOLO detectors on X-ray scans.

Importing the package configures Ultralytics for offline use *before* anything imports
Ultralytics itself (it reads these variables at import time).
"""
from pathlib import Path

from xray_exp.offline import configure_offline

configure_offline()

__version__ = "0.1.0"
# The Hydra config tree (conf/train.yaml and its groups).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
