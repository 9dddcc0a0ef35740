"""The planner: turns enrolments, progress and warnings into assignments and pauses."""
