"""spikefm: spike neural foundation models built from swappable parts."""

__version__ = "0.1.0"
