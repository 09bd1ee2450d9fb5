"""Process-wide defaults that must be set before torch is imported."""

import os


def limit_cpu_threads() -> None:
    """On machines with two cores or fewer, default torch to one thread unless the user chose.

    The bundled models are tiny, so a second thread buys little, and when the other core is
    busy (a training run beside the app, a test) two threads measured 4–40× slower than one
    here. OMP_NUM_THREADS is read when torch is imported, so call this first; an explicit
    OMP_NUM_THREADS in the environment always wins.
    """
    if (os.cpu_count() or 1) <= 2:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
