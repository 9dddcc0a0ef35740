"""`stepout simulate` (CONTRACT §10): drives a synthetic cohort through a running system over NATS, as a
platform would, and prints a summary.

A development tool, kept out of the production packages and out of the image: `make install` makes it
importable in a checkout, where `stepout simulate ...`, `python -m stepout_simulate ...` and
`make simulate ARGS="..."` run it. It imports the production packages; none of them imports it, but for
the `stepout simulate` command, which says where to find it when it is missing.
"""

from .cohort import NoAnswer, SimulationResult, run_simulation, simulate

__all__ = ["NoAnswer", "SimulationResult", "run_simulation", "simulate"]
