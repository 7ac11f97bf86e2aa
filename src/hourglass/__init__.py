"""hourglass: what encoder-decoder networks learn, layer by layer, across seeds."""

__version__ = "0.1.0"
