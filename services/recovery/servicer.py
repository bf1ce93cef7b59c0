"""`scoremesh.v1.Recovery`: protobuf in, protobuf out; the work is in recoverer.py."""

from __future__ import annotations

import asyncio

from mesh.admin_auth import check_bearer
from mesh.handlers import header
from scoremesh.v1 import recovery_pb2, recovery_pb2_grpc
from services.recovery import converters
from services.recovery.recoverer import Recoverer
from services.recovery.responder import AlertResponder


class RecoveryServicer(recovery_pb2_grpc.RecoveryServicer):
    def __init__(self, recoverer: Recoverer, responder: AlertResponder, admin_token: str | None) -> None:
        self.recoverer = recoverer
        self.responder = responder
        self.admin_token = admin_token

    async def GetStatus(self, request, context):
        rolled_back = [r.target for r in await asyncio.to_thread(self.responder.rollbacks.all)]
        return converters.status_to_proto(list(self.recoverer.tracked.values()), rolled_back)

    async def ListActions(self, request, context):
        return converters.actions_to_proto(self.recoverer.audit.entries(converters.list_limit_from_proto(request)))

    async def Trigger(self, request, context):
        check_bearer(header(context, "authorization"), self.admin_token, "recovery triggers")
        action, target, reason, dry_run = converters.trigger_from_proto(request)
        if action in converters.TARGET_ACTIONS:
            return converters.trigger_to_proto(await self.responder.trigger(action, target, reason, dry_run))
        return converters.trigger_to_proto(await self.recoverer.trigger(action, target, reason, dry_run))

    async def WatchActions(self, request, context):
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        loop = asyncio.get_running_loop()

        def put(entry) -> None:  # a slow watcher loses the oldest entries, never blocks the audit
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(entry)

        def hear(entry) -> None:  # may run on another thread (the audit log's writer)
            loop.call_soon_threadsafe(put, entry)

        self.recoverer.audit.listeners.append(hear)
        try:
            while True:
                yield recovery_pb2.WatchActionsResponse(action=converters.action_to_proto(await queue.get()))
        finally:
            self.recoverer.audit.listeners.remove(hear)
