"""TLS plumbing: the local CA's certificates, the settings that turn TLS on, and a real loopback
server with mTLS that the mesh client reaches and strangers do not."""

from __future__ import annotations

import asyncio
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import ValidationError

from mesh import tls
from mesh.certificates import CertificateAuthority, make_mesh_certificates
from mesh.config import MeshSettings


def test_the_ca_signs_certificates_that_name_what_clients_dial(tmp_path):
    issued = make_mesh_certificates(tmp_path, ["router-1", "inference-2"], hosts=("router.internal",))
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for name in ("router-1", "inference-2", "cli"):
        cert = x509.load_pem_x509_certificate(issued[name].cert.read_bytes())
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {name, "localhost", "router.internal"} <= set(san.get_values_for_type(x509.DNSName))
        assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "router" in x509.load_pem_x509_certificate(issued["router-1"].cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)  # the service name too
    again = CertificateAuthority(tmp_path)  # the CA is kept: certificates issued before stay valid
    assert again.cert == ca


def test_tls_settings_come_whole_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(ValidationError, match="tls_cert, tls_key missing"):
        MeshSettings(tls_ca=tmp_path / "ca.pem")
    settings = MeshSettings(tls_ca=tmp_path / "ca.pem", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "c.key")
    with pytest.raises(tls.TlsError, match="tls_ca: cannot read"):
        tls.configured(settings)
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(tls.TlsError, match="tls_ca: .* is not a PEM file"):
        tls.configured(settings)
    assert tls.configured(MeshSettings()) is None


def test_the_cli_uses_what_up_tls_left_in_the_state_directory(tmp_path):
    assert tls.for_cli(MeshSettings(state_dir=tmp_path)) is None
    make_mesh_certificates(tmp_path / "tls", ["router-1"])
    material = tls.for_cli(MeshSettings(state_dir=tmp_path))
    assert material is not None and material.cert == (tmp_path / "tls" / "cli.pem").read_bytes()


async def _health_server(material: tls.TlsMaterial) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(material))
    await server.start()
    return server, f"127.0.0.1:{port}"


def test_mtls_lets_the_mesh_in_and_keeps_strangers_out(tmp_path):
    issued = make_mesh_certificates(tmp_path / "mesh", ["server-1"])
    stranger = CertificateAuthority(tmp_path / "other").issue("cli")
    server_material = tls.load(issued["server-1"].ca, issued["server-1"].cert, issued["server-1"].key)
    cli = tls.load(issued["cli"].ca, issued["cli"].cert, issued["cli"].key)
    forged = tls.TlsMaterial(cli.ca, stranger.cert.read_bytes(), stranger.key.read_bytes())
    wrong_trust = tls.TlsMaterial(stranger.ca.read_bytes(), cli.cert, cli.key)

    async def check(channel: grpc.aio.Channel) -> str:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.aio.AioRpcError as error:
            return error.code().name
        finally:
            await channel.close()
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def scenario():
        server, address = await _health_server(server_material)
        try:
            return {
                "mesh": await check(tls.Channels(cli).aio(address)),
                "plaintext": await check(grpc.aio.insecure_channel(address)),
                "no client certificate": await check(grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(cli.ca))),
                "certificate of another CA": await check(tls.Channels(forged).aio(address)),
                "trusts another CA": await check(tls.Channels(wrong_trust).aio(address)),
            }
        finally:
            await server.stop(0)

    assert asyncio.run(scenario()) == {
        "mesh": "SERVING", "plaintext": "UNAVAILABLE", "no client certificate": "UNAVAILABLE",
        "certificate of another CA": "UNAVAILABLE", "trusts another CA": "UNAVAILABLE",
    }


def test_one_server_name_can_cover_every_pod(tmp_path):
    """tls_server_name: pods are dialled by IP, their shared certificate names the service."""
    ca = CertificateAuthority(tmp_path)
    shared = ca.issue("scoremesh")
    material = tls.load(shared.ca, shared.cert, shared.key)
    # 127.0.0.2 is not in the certificate; the override makes the name checked "scoremesh".
    without = tls.TlsMaterial(material.ca, material.cert, material.key)
    overridden = tls.TlsMaterial(material.ca, material.cert, material.key, server_name="scoremesh")

    async def scenario():
        server = grpc.aio.server()
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_secure_port("127.0.0.2:0", tls.server_credentials(material))
        await server.start()
        codes = []
        for m in (without, overridden):
            channel = tls.Channels(m).aio(f"127.0.0.2:{port}")
            try:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
            await channel.close()
        await server.stop(0)
        return codes

    assert asyncio.run(scenario()) == ["UNAVAILABLE", "OK"]
