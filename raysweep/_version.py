"""The installed version of raysweep."""

__version__ = "0.1.0"
