"""Admin of the routing configuration: read it, replace it (validated whole; dry run). No gRPC."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidArgument
from mesh.admin_auth import check_bearer
from services.router.routing_config import RoutingConfig, parse_yaml
from services.router.routing_state import RoutingSource, RoutingState
from services.router.rules import RuleError


@dataclass(frozen=True)
class Applied:
    config: RoutingConfig
    applied: bool


class RoutingAdmin:
    def __init__(self, state: RoutingState, source: RoutingSource, token: str | None) -> None:
        self.state = state
        self.source = source
        self.token = token

    def current(self) -> tuple[RoutingConfig, str]:
        return self.state.config, self.state.source

    def apply(self, text: str, dry_run: bool, authorization: str) -> Applied:
        check_bearer(authorization, self.token, "routing changes")
        try:
            config = parse_yaml(text)
        except RuleError as error:
            raise InvalidArgument(f"yaml: {error}") from None
        if dry_run:
            return Applied(config, False)
        where = self.source.store(config.document)  # every router follows the source
        self.state.apply(config.document, where)  # and this one at once
        return Applied(config, True)
