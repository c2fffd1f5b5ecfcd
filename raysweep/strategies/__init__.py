"""What to try next (searchers) and when to stop a trial (schedulers): Ray Tune's own, by name.

The names and what each refuses are in :mod:`raysweep.strategies.registry`; each algorithm is
one small module here, imported only when a sweep uses it.
"""
