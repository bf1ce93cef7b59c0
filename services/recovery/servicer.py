"""`scoremesh.v1.Recovery`: protobuf in, protobuf out; the work is in recoverer.py."""

from __future__ import annotations

from dataclasses import asdict

from mesh.errors import InvalidArgument, NotFound
from scoremesh.v1 import recovery_pb2, recovery_pb2_grpc
from services.recovery.recoverer import Recoverer

ACTIONS = ("restart_service",)


class RecoveryServicer(recovery_pb2_grpc.RecoveryServicer):
    def __init__(self, recoverer: Recoverer) -> None:
        self.recoverer = recoverer

    async def GetStatus(self, request, context):
        return recovery_pb2.GetStatusResponse(
            instances=[
                recovery_pb2.WatchedInstance(
                    service=t.instance.service,
                    instance_id=t.instance.instance_id,
                    address=t.instance.address,
                    healthy=t.healthy,
                    consecutive_failures=t.failures,
                )
                for t in sorted(self.recoverer.tracked.values(), key=lambda t: t.instance.instance_id)
            ]
        )

    async def ListActions(self, request, context):
        if request.limit < 0:
            raise InvalidArgument("limit: must be >= 0")
        entries = self.recoverer.audit.entries(request.limit or 100)
        return recovery_pb2.ListActionsResponse(actions=[recovery_pb2.RecoveryAction(**asdict(e)) for e in entries])

    async def Trigger(self, request, context):
        if request.action not in ACTIONS:
            raise InvalidArgument(f"action: must be one of {', '.join(ACTIONS)} (got {request.action!r})")
        tracked = self.recoverer.tracked.get(request.instance_id)
        if tracked is None:
            raise NotFound(f"instance_id: {request.instance_id!r} is not a watched instance")
        if request.instance_id in self.recoverer.recovering:
            raise InvalidArgument(f"instance_id: {request.instance_id!r} is already being recovered")
        task = self.recoverer.start_recovery(tracked.instance, request.reason or "manual trigger")
        entry = await task
        return recovery_pb2.TriggerResponse(action=recovery_pb2.RecoveryAction(**asdict(entry)))
