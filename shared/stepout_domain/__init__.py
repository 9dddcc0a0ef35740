"""The pure domain of stepout: ladder, catalog, rule sets, progress, overload and plan policy.

Nothing in this package does I/O, reads a clock or knows about NATS: time and the
rule set are always arguments, so an audit can replay any decision by calling it again.
"""
