"""scoremesh.v1 Recovery messages <-> the recoverer's types. Pure functions."""

from __future__ import annotations

from dataclasses import asdict

from domain.errors import InvalidArgument, quote
from scoremesh.v1 import recovery_pb2
from services.recovery.audit import AuditEntry
from services.recovery.recoverer import ACTIONS, Tracked

TARGET_ACTIONS = ("rollback_version", "release_version", "scale_up", "switch_model", "switch_back", "clear_cache", "promote_version",
                  "rollback_promotion")
"""Actions on a target (`model:version`; a service for scale_up; a model for switch_*; "features" for
clear_cache) rather than an instance."""

DEFAULT_LIMIT = 100


def status_to_proto(tracked: list[Tracked], rolled_back: list[str] = ()) -> recovery_pb2.GetStatusResponse:
    return recovery_pb2.GetStatusResponse(
        rolled_back=list(rolled_back),
        instances=[
            recovery_pb2.WatchedInstance(
                service=t.instance.service,
                instance_id=t.instance.instance_id,
                address=t.instance.address,
                healthy=t.healthy,
                consecutive_failures=t.failures,
            )
            for t in sorted(tracked, key=lambda t: t.instance.instance_id)
        ]
    )


def action_to_proto(entry: AuditEntry) -> recovery_pb2.RecoveryAction:
    fields = asdict(entry)
    fields["duration_seconds"] = fields.pop("duration_s")
    return recovery_pb2.RecoveryAction(**fields)


def list_limit_from_proto(request: recovery_pb2.ListActionsRequest) -> int:
    if request.limit < 0:
        raise InvalidArgument(f"limit: must be >= 0 (got {request.limit})")
    return request.limit or DEFAULT_LIMIT


def actions_to_proto(entries: list[AuditEntry]) -> recovery_pb2.ListActionsResponse:
    return recovery_pb2.ListActionsResponse(actions=[action_to_proto(e) for e in entries])


def trigger_from_proto(request: recovery_pb2.TriggerRequest) -> tuple[str, str, str, bool]:
    """(action, instance id or model:version target, reason, dry run); the action must be one
    recovery knows, with the field it needs."""
    if request.action not in ACTIONS + TARGET_ACTIONS:
        raise InvalidArgument(f"action: must be one of {', '.join(ACTIONS + TARGET_ACTIONS)} (got {quote(request.action)})")
    field = "target" if request.action in TARGET_ACTIONS else "instance_id"
    value = getattr(request, field) or ("features" if request.action == "clear_cache" else "")
    if not value:
        raise InvalidArgument(f"{field}: required for {request.action}")
    return request.action, value, request.reason[:500] or "manual trigger", request.dry_run


def trigger_to_proto(entry: AuditEntry) -> recovery_pb2.TriggerResponse:
    return recovery_pb2.TriggerResponse(action=action_to_proto(entry))
