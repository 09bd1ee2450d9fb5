"""Entry point for ``python -m infalign_core``."""

import sys

from infalign_core.runtime import limit_cpu_threads

limit_cpu_threads()  # before anything imports torch

from infalign_core.cli import main  # noqa: E402

sys.exit(main())
