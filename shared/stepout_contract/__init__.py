"""The public wire contract of stepout (CONTRACT.md): envelopes, payloads, subjects, settings.

Both services import this package; neither imports the other.
"""
