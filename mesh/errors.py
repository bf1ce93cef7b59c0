"""Domain errors that carry their gRPC status by name.

Domain code raises these without importing grpc; `mesh.interceptors` is the one place that turns
them into `context.abort(status, message)`.
"""

from __future__ import annotations


class MeshError(Exception):
    """An expected failure whose message is safe to show to the caller."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class UpstreamError(MeshError):
    """A call to another service failed; keeps that service's status (e.g. UNAVAILABLE)."""

    def __init__(self, service: str, status: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.status = status
        self.service = service
