"""TLS and mTLS for every server and client of the mesh, from certificate paths in the settings
(`tls_ca`, `tls_cert`, `tls_key`; `SCOREMESH_TLS_*` or YAML). With them set, a server listens
with TLS only (and, with `tls_client_auth`, refuses a client without a certificate signed by the
CA), and every client verifies servers against the CA and presents its own certificate.

The CLI finds the certificates `scoremesh up --tls` made in `<state_dir>/tls` when none are
configured, as it finds the admin token there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mesh.config import MeshSettings

TLS_DIR = "tls"
CLI_NAME = "cli"


class TlsError(ValueError):
    """A certificate or key named in the settings cannot be read."""


@dataclass(frozen=True)
class TlsMaterial:
    ca: bytes
    cert: bytes
    key: bytes
    client_auth: bool = True
    server_name: str | None = None


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsError(f"{what}: cannot read {path} ({error.strerror})") from None
    if b"-----BEGIN" not in data:
        raise TlsError(f"{what}: {path} is not a PEM file")
    return data


def load(ca: Path, cert: Path, key: Path, client_auth: bool = True, server_name: str | None = None) -> TlsMaterial:
    return TlsMaterial(_read(ca, "tls_ca"), _read(cert, "tls_cert"), _read(key, "tls_key"), client_auth, server_name)


def configured(settings: MeshSettings) -> TlsMaterial | None:
    """The process's own TLS material, or None when the mesh runs in plaintext."""
    if settings.tls_ca is None:
        return None
    return load(settings.tls_ca, settings.tls_cert, settings.tls_key, settings.tls_client_auth, settings.tls_server_name)


def for_cli(settings: MeshSettings) -> TlsMaterial | None:
    """The configured material, else the CLI certificate `scoremesh up --tls` left in the state
    directory, else None (plaintext)."""
    own = configured(settings)
    if own is not None:
        return own
    directory = settings.state_dir / TLS_DIR
    if (directory / "ca.pem").is_file() and (directory / f"{CLI_NAME}.pem").is_file():
        return load(directory / "ca.pem", directory / f"{CLI_NAME}.pem", directory / f"{CLI_NAME}.key", server_name=settings.tls_server_name)
    return None


def server_credentials(material: TlsMaterial) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca, require_client_auth=material.client_auth
    )


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert)


class Channels:
    """Opens channels the way the mesh is configured: TLS (credentials built once) or plaintext."""

    def __init__(self, material: TlsMaterial | None) -> None:
        self.material = material
        self._credentials = channel_credentials(material) if material else None
        self._extra: list[tuple[str, Any]] = (
            [("grpc.ssl_target_name_override", material.server_name)] if material and material.server_name else []
        )

    @property
    def secure(self) -> bool:
        return self._credentials is not None

    def aio(self, address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(address, options=list(options))
        return grpc.aio.secure_channel(address, self._credentials, options=[*options, *self._extra])

    def sync(self, address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        if self._credentials is None:
            return grpc.insecure_channel(address, options=list(options))
        return grpc.secure_channel(address, self._credentials, options=[*options, *self._extra])


PLAINTEXT = Channels(None)
