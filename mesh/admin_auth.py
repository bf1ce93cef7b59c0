"""Admin calls carry `authorization: Bearer <token>`: checked here, in constant time; the
token is never logged. (No gRPC here: servicers pass the header's value.)"""

from __future__ import annotations

import hmac
from pathlib import Path

from domain.errors import FailedPrecondition, PermissionDenied, Unauthenticated

TOKEN_FILE = "admin-token"


def admin_token(configured: str | None, state_dir: Path) -> str | None:
    """The admin token: the configured one, else the one `scoremesh up` keeps in the state
    directory (mode 0600), else None."""
    if configured:
        return configured
    path = state_dir / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def check_bearer(authorization: str, token: str | None, what: str = "admin calls") -> None:
    """Raise unless `authorization` is "Bearer <token>". No token configured: refused too."""
    if not token:
        raise FailedPrecondition(f"{what} are locked: no admin token is configured (admin_token, or <state_dir>/{TOKEN_FILE})")
    if not authorization:
        raise Unauthenticated(f"{what} need an 'authorization: Bearer <token>' header")
    if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        raise PermissionDenied("the bearer token is not the admin token")
