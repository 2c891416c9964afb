"""``python -m advisor``: see :mod:`advisor.cli`."""

import sys

from advisor.cli import run

sys.exit(run())
