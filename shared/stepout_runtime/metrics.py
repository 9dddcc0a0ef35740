"""The Prometheus metrics of CONTRACT §8. No label carries a user id or other unbounded value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CommonMetrics:
    """Metrics both services export."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.registry = registry
        self.dead_letters = Counter(
            "stepout_dead_letters", "Inputs turned into dead letters", ["service", "reason"], registry=registry
        )
        self.events_published = Counter(
            "stepout_events_published", "Outputs published to JetStream", ["service", "type"], registry=registry
        )
        self.consumer_pending = Gauge(
            "stepout_consumer_pending_messages",
            "Messages waiting in a JetStream consumer (from consumer info)",
            ["service", "consumer"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "stepout_ingest_batch_seconds",
            "Time to decide and commit one ingest batch",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_append_seconds = Histogram(
            "stepout_store_append_seconds",
            "Time of one store transaction that appends a batch of events",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.projection_lag = Gauge(
            "stepout_projection_lag_events",
            "Stored events not yet processed by a projection or the outbox",
            ["projection"],
            registry=registry,
        )

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(self.service, reason).inc()

    def published(self, type_: str) -> None:
        self.events_published.labels(self.service, type_).inc()


class TrackerMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("tracker", registry)
        self.attempts_logged = Counter(
            "stepout_attempts_logged", "Attempts recorded, by outcome", ["outcome"], registry=registry
        )
        for outcome in ("rejected", "accepted", "hostile", "escaped", "skipped"):
            self.attempts_logged.labels(outcome)
        self.attempts_duplicate = Counter(
            "stepout_attempts_duplicate", "Attempts ignored because their attempt_id was seen", registry=registry
        )
        self.warnings = Counter(
            "stepout_overload_warnings", "Overload warnings raised, by severity", ["severity"], registry=registry
        )
        self.rule_hits = Counter(
            "stepout_overload_rule_hits", "Overload rules holding in a raised warning", ["rule"], registry=registry
        )
        self.participants_overloaded = Gauge(
            "stepout_participants_overloaded", "Participants with an active warning", registry=registry
        )


class PlannerMetrics(CommonMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("planner", registry)
        self.enrolled = Counter(
            "stepout_participants_enrolled", "Participants enrolled (first enrolments)", registry=registry
        )
        self.assigned = Counter(
            "stepout_challenges_assigned", "Challenges assigned", ["reason", "level"], registry=registry
        )
        self.paused = Counter("stepout_plans_paused", "Plans paused", ["reason"], registry=registry)
