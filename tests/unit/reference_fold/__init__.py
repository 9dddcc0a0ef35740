"""The tracker's fold as release 0.2 computed it, over the whole history: the oracle the bounded
incremental decider is compared with (tests/unit/test_tracker_decider.py). Not used by stepout."""
