"""raysweep's benchmark harness: ``python -m benchmarks --help``.

Not part of the installed package, and not run by the test suite except for its smoke mode.
"""
