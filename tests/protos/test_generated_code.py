"""Generated code is fresh and the protos pass buf lint."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.e2e.mesh_process import REPO_ROOT


def test_generated_code_is_not_stale():
    result = subprocess.run([sys.executable, "-m", "mesh.protogen", "--check"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_passes():
    buf = shutil.which("buf")
    assert buf, "buf is installed with the dev extra (buf-bin)"
    result = subprocess.run([buf, "lint"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_score_request_is_an_extract_request_on_the_wire():
    """The router relays a ScoreRequest's bytes to FeatureService/Extract (services/router/
    clients.py): its fields must keep the numbers, types and messages of ExtractRequest's."""
    from scoremesh.v1 import features_pb2, router_pb2

    score, extract = router_pb2.ScoreRequest.DESCRIPTOR, features_pb2.ExtractRequest.DESCRIPTOR
    for field in score.fields:
        twin = extract.fields_by_number[field.number]
        assert (twin.name, twin.type, twin.is_repeated) == (field.name, field.type, field.is_repeated), field.name
        if field.message_type is not None:
            assert twin.message_type.full_name == field.message_type.full_name
        if field.enum_type is not None:
            assert twin.enum_type.full_name == field.enum_type.full_name
