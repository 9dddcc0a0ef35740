"""A participant's audit trail, read back from both services' event stores (CONTRACT §10).

The same logic whatever asks: the `stepout` command prints what it returns.

- `trail`: the stored events of both services for one participant (`entries`), erasures
  honoured (`erasure`), merged into one ordered trail (`merge`).
- `chain` and `export`: the trail as a hash-chained JSON Lines file, and its verification.
- `replay`: the participant as of a time.
- `rederive`: every stored decision re-run through the domain deciders the services run
  (`tracking.decide`, `planning.decide`) and compared (`difference`).

Nothing here prints; long reads report through an optional `progress.Progress` callback.
"""
