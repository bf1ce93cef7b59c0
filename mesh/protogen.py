"""Generate the Python code for protos/ into gen/ (the one command: `python -m mesh.protogen`).

`python -m mesh.protogen --check` regenerates into a temporary folder and fails when gen/ differs,
so stale generated code is caught by the tests and CI.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_ROOT = ROOT / "gen"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc (from grpcio-tools) over every .proto; add the package __init__ files."""
    from grpc_tools import protoc  # dev dependency, imported only when generating

    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package_dir in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        d = package_dir
        while d != out_dir:
            (d / "__init__.py").touch()
            d = d.parent


def differences(expected: Path, actual: Path) -> list[str]:
    found: list[str] = []
    comparison = filecmp.dircmp(expected, actual, ignore=["__pycache__"])

    def walk(c: filecmp.dircmp, prefix: str) -> None:
        found.extend(f"{prefix}{n} (missing from gen/)" for n in c.left_only)
        found.extend(f"{prefix}{n} (not generated from protos/)" for n in c.right_only)
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        found.extend(f"{prefix}{n} (differs)" for n in mismatch + errors)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when gen/ is stale")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "gen"
            generate(fresh)
            stale = differences(fresh, GEN_ROOT)
        if stale:
            print("gen/ is stale; run `python -m mesh.protogen`:", *stale, sep="\n  ")
            return 1
        print("gen/ is up to date")
        return 0
    if GEN_ROOT.exists():
        shutil.rmtree(GEN_ROOT)
    generate(GEN_ROOT)
    print(f"generated {len(list(GEN_ROOT.rglob('*_pb2.py')))} modules into {GEN_ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
