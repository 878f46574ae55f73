"""xray_exp: Hydra experiment sweeps for Ultralytics YOLO detectors on X-ray scans.

Importing the package configures Ultralytics for offline use *before* anything imports
Ultralytics itself (it reads these variables at import time).
"""
from importlib import resources
from pathlib import Path

from xray_exp.offline import configure_offline

configure_offline()

__version__ = "0.1.0"
# The Hydra config tree (conf/train.yaml and its groups) as a folder, for compose() users. It is the package
# xray_exp.conf (pyproject.toml): the repository's conf/ in a checkout, a copy inside the wheel otherwise.
CONF_PACKAGE = "xray_exp.conf"
CONF_DIR = Path(str(resources.files(CONF_PACKAGE)))

from xray_exp.run.run_folder import register_resolvers  # noqa: E402

register_resolvers()  # conf/train.yaml's folder names use it, wherever the config is composed
