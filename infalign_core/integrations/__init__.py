"""Bridges from InfAlign's calibration and transforms to other training engines (``trl``)."""
