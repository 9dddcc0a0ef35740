"""The `stepout` command line (CONTRACT §10)."""
