"""Entry point for ``python -m infalign_core``."""

import sys

from infalign_core.cli import main

sys.exit(main())
