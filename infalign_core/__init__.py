"""InfAlign Studio's library: inference-aware alignment (arXiv 2412.19792) without any UI.

Pages in ``app_pages/`` and the command line in ``infalign_core.cli`` are thin layers over
this package; it never imports streamlit.
"""

from infalign_core.errors import InfAlignError

__all__ = ["InfAlignError"]
__version__ = "0.1.0"
