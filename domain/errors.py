"""Domain errors that carry their gRPC status by name.

Domain code raises these without importing grpc; `mesh.handlers` is the one place that turns
them into `context.abort(status, message)`. Messages echo what a caller sent only through
`quote`, so a 1 MB field can never make a status message too big to deliver.
"""

from __future__ import annotations

QUOTE_LIMIT = 40


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of a caller's value, cut to a short prefix with its full length when longer."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class MeshError(Exception):
    """An expected failure whose message is safe to show to the caller.

    `reason` and `info`, when given, travel as a google.rpc.ErrorInfo in the status details, so
    a caller can act on the error without parsing its message.
    """

    status = "INTERNAL"
    retry_after_s: float | None = None
    """When set, the caller may try again after this long (a RetryInfo in the status details)."""

    def __init__(self, message: str, reason: str = "", info: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.info = dict(info or {})


class InvalidArgument(MeshError):
    status = "INVALID_ARGUMENT"


class NotFound(MeshError):
    status = "NOT_FOUND"


class Unavailable(MeshError):
    status = "UNAVAILABLE"


class ResourceExhausted(MeshError):
    status = "RESOURCE_EXHAUSTED"


class FailedPrecondition(MeshError):
    status = "FAILED_PRECONDITION"


class DeadlineExceeded(MeshError):
    status = "DEADLINE_EXCEEDED"


class Unauthenticated(MeshError):
    status = "UNAUTHENTICATED"


class PermissionDenied(MeshError):
    status = "PERMISSION_DENIED"


class ModelError(MeshError):
    """The model, not the caller, failed: e.g. it produced a non-finite output. The result is
    withheld; the status is INTERNAL (a server-side fault) with a reason a caller can act on."""

    status = "INTERNAL"


class UpstreamError(MeshError):
    """A call to another service failed; keeps that service's status (e.g. UNAVAILABLE) and
    its ErrorInfo reason, if it sent one."""

    def __init__(self, service: str, status: str, message: str, reason: str = "", info: dict[str, str] | None = None) -> None:
        super().__init__(f"{service}: {message}", reason, info)
        self.status = status
        self.service = service
        self.upstream_message = message
