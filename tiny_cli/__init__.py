"""tiny: a command-line lab for tiny neural networks that represent basic functions."""

__version__ = "0.1.0"
