"""What both services run on: NATS connection and streams, the batched ingest loop,
the outbox relay, the event-store factory, HTTP, logs and metrics."""
