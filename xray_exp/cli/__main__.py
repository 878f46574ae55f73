"""`python -m xray_exp.cli` = the `xray-exp` console script (usable before the package is installed)."""
import sys

from xray_exp.cli import main

sys.exit(main())
