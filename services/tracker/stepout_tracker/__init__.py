"""The tracker: records attempts in an event store and decides progress and overload warnings."""
