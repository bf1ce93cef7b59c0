"""google.rpc.Status details on gRPC errors: an ErrorInfo (reason, metadata) in the standard
`grpc-status-details-bin` trailer, readable by any gRPC client."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"
DOMAIN = "scoremesh"
# ErrorInfo metadata values are for machines (a version, a schema name): kept short, so the
# trailer stays far below what clients accept.
MAX_INFO_VALUE = 128


def error_info_trailer(code: grpc.StatusCode, message: str, reason: str, info: dict[str, str],
                       retry_after_s: float | None = None) -> tuple[tuple[str, bytes], ...]:
    detail = any_pb2.Any()
    metadata = {str(k)[:MAX_INFO_VALUE]: str(v)[:MAX_INFO_VALUE] for k, v in info.items()}
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata))
    details = [detail]
    if retry_after_s is not None:  # google.rpc.RetryInfo: when the caller may try again
        retry = any_pb2.Any()
        retry_info = error_details_pb2.RetryInfo()
        retry_info.retry_delay.FromTimedelta(timedelta(seconds=retry_after_s))
        retry.Pack(retry_info)
        details.append(retry)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return ((DETAILS_KEY, status.SerializeToString()),)


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> tuple[str, dict[str, str]]:
    """(reason, metadata) of the ErrorInfo a failed call carried, or ("", {})."""
    trailers = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                found = error_details_pb2.ErrorInfo()
                if detail.Unpack(found):
                    return found.reason, dict(found.metadata)
    return "", {}


def retry_after(error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """Seconds of the RetryInfo a failed call carried, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            for detail in status_pb2.Status.FromString(value).details:
                found = error_details_pb2.RetryInfo()
                if detail.Unpack(found):
                    return found.retry_delay.ToTimedelta().total_seconds()
    return None
