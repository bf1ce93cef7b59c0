"""Our Open Inference Protocol proto is wire-identical to the one tritonclient ships.

tritonclient's compiled descriptors and ours both define `inference.*` symbols, so they cannot
share one descriptor pool: tritonclient's file descriptor is read in a subprocess and compared
here message by message, field by field (name, number, type, label, message type).
"""

from __future__ import annotations

import base64
import subprocess
import sys

from google.protobuf import descriptor_pb2

from inference import grpc_service_pb2

DUMP = "import base64,sys; from tritonclient.grpc import service_pb2 as s; sys.stdout.write(base64.b64encode(s.DESCRIPTOR.serialized_pb).decode())"


def _triton_file() -> descriptor_pb2.FileDescriptorProto:
    out = subprocess.run([sys.executable, "-c", DUMP], capture_output=True, text=True, check=True).stdout
    return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(out))


def _ours() -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(grpc_service_pb2.DESCRIPTOR.serialized_pb)


def _messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {}

    def walk(message, prefix):
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            walk(nested, name)

    for message in file.message_type:
        walk(message, file.package)
    return found


def _fields(message: descriptor_pb2.DescriptorProto) -> dict[str, tuple]:
    return {
        f.name: (f.number, f.type, f.label, f.type_name, f.oneof_index if f.HasField("oneof_index") else None)
        for f in message.field
    }


def test_every_message_matches_tritonclient_field_by_field():
    ours, theirs = _messages(_ours()), _messages(_triton_file())
    assert len(ours) > 30
    for name, message in ours.items():
        assert name in theirs, f"{name} is not part of the protocol tritonclient speaks"
        assert _fields(message) == _fields(theirs[name]), name


def test_every_rpc_matches_tritonclient():
    ours_file, theirs_file = _ours(), _triton_file()
    assert ours_file.package == theirs_file.package == "inference"
    (ours,) = ours_file.service
    (theirs,) = theirs_file.service
    assert ours.name == theirs.name == "GRPCInferenceService"
    their_methods = {m.name: m for m in theirs.method}
    for method in ours.method:
        other = their_methods[method.name]
        assert (method.input_type, method.output_type, method.client_streaming, method.server_streaming) == (
            other.input_type, other.output_type, other.client_streaming, other.server_streaming
        ), method.name
    assert {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"} <= {m.name for m in ours.method}
