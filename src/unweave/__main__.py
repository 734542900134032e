"""``python -m unweave`` -> the ``unweave`` command line."""

import sys

from .cli import main

sys.exit(main())
