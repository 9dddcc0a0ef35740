"""Refusals as exceptions: one class per reason code of the contract (CONTRACT §5, §6, §7).

Every exception the client raises on purpose is a `StepoutError`. A refusal carries the contract's
reason code in `code`, so a platform can branch on the class or on the code.
"""

from __future__ import annotations

from stepout_contract.dead_letters import REASON_CODES


class StepoutError(Exception):
    """Anything the client reports on purpose."""


class Unavailable(StepoutError):
    """stepout or NATS did not answer, after every retry: nothing is known to have been refused."""


class Timeout(StepoutError):
    """What was awaited did not come in time (`next_assignment`)."""


class Refused(StepoutError):
    """stepout refused a request or an input; `code` is the contract's reason code."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


class InvalidRequest(Refused):
    """A query stepout could not read (`invalid_request`)."""

    code = "invalid_request"


class Unauthorized(Refused):
    """An HTTP read without a bearer token, or with one stepout does not recognise (401)."""

    code = "unauthorized"

    def __init__(self, message: str, *, token_missing: bool) -> None:
        super().__init__(message)
        self.token_missing = token_missing
        """True when no token was sent; False when the one sent is not recognised."""


class Forbidden(Refused):
    """An HTTP read by a role that may not read it (403)."""

    code = "forbidden"


# The dead-letter reasons (CONTRACT §5), one class each.


class TooLarge(Refused):
    code = "too_large"


class InvalidJson(Refused):
    code = "invalid_json"


class InvalidEnvelope(Refused):
    code = "invalid_envelope"


class UnknownType(Refused):
    code = "unknown_type"


class InvalidSubject(Refused):
    code = "invalid_subject"


class InvalidData(Refused):
    """The input breaks its model: the client checks this with the contract's models before sending."""

    code = "invalid_data"


class InvalidInput(Refused):
    code = "invalid_input"


class NotEnrolled(Refused):
    """The participant was never enrolled: a query's `not_found`, an input's `not_enrolled`."""

    code = "not_enrolled"


class Withdrawn(Refused):
    """The participant has withdrawn: no assignment will ever come."""

    code = "withdrawn"


class Erased(Refused):
    """The participant was erased: nothing more is recorded for them."""

    code = "erased"


class AttemptConflict(Refused):
    code = "attempt_conflict"


class NotTheirCoach(Refused):
    code = "not_their_coach"


class RetriesExhausted(Refused):
    code = "retries_exhausted"


BY_REASON: dict[str, type[Refused]] = {
    cls.code: cls
    for cls in (
        TooLarge,
        InvalidJson,
        InvalidEnvelope,
        UnknownType,
        InvalidSubject,
        InvalidData,
        InvalidInput,
        NotEnrolled,
        Withdrawn,
        Erased,
        AttemptConflict,
        NotTheirCoach,
        RetriesExhausted,
    )
}
assert set(BY_REASON) == set(REASON_CODES), "every dead-letter reason of the contract has its exception"


def refusal(code: str, message: str) -> Refused:
    """The exception for a reason code: a dead-letter reason, or a query's `not_found`/`invalid_request`."""
    if code == "not_found":
        return NotEnrolled(message)
    if code == "invalid_request":
        return InvalidRequest(message)
    cls = BY_REASON.get(code)
    return cls(message) if cls is not None else Refused(message, code=code)
