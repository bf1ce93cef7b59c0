"""Extract benchmark: `python -m benchmarks.features` (not a test; prints numbers).

Times Extract of 1, 100 and 1,000 candidates on this machine: the domain code alone (validate,
store lookups in SQLite, transform) and the whole gRPC call against a features server on
loopback, with the ads schema fitted on the synthetic data.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from mesh.handlers import add_servicer
from scoremesh.v1 import features_pb2, features_pb2_grpc
from mesh.common_messages import candidates_to_proto, context_to_proto
from services.features.enrichment import Enricher
from services.features.extraction import FeatureExtractor, SchemaVersions
from domain.features.schema import load_spec
from domain.features.schema_store import SchemaStore
from services.features.servicer import FeatureServicer
from domain.features.store.sqlite_store import SqliteStore
from training.synthetic import generate, make_world, sample_request

SIZES = (1, 100, 1000)


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1e3:8.3f} ms   p95 {p95 * 1e3:8.3f} ms"


async def run(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        world = make_world(0)
        SchemaStore(directory).save(load_spec("ads").fit(generate(20_000, world=world).batch, "0"))
        store = SqliteStore(directory / "online.sqlite")
        for kind, table in world.store_tables.items():
            store.put_many(kind, table.items())
        extractor = FeatureExtractor(SchemaVersions(SchemaStore(directory), "ads"), Enricher(store, 1.0), max_candidates=1000)
        server = grpc.aio.server()
        add_servicer(server, features_pb2_grpc.add_FeatureServiceServicer_to_server, FeatureServicer(extractor))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"Extract, {repeats} requests per size, schema dim {extractor.schemas.get().dim}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = features_pb2_grpc.FeatureServiceStub(channel)
            for n in SIZES:
                context, candidates = sample_request(n, "search", seed=n)
                data_type, proto_context = context_to_proto(context)
                request = features_pb2.ExtractRequest(data_type=data_type, context=proto_context, candidates=candidates_to_proto(candidates))
                domain, wire = [], []
                for _ in range(3):  # warm-up
                    await extractor.extract(context, candidates)
                    await stub.Extract(request, timeout=10)
                for _ in range(repeats):
                    t = time.perf_counter()
                    await extractor.extract(context, candidates)
                    domain.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await stub.Extract(request, timeout=10)
                    wire.append(time.perf_counter() - t)
                print(f"  {n:5d} candidates   domain: {_summary(domain)}   gRPC: {_summary(wire)}")
        await server.stop(0)
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    asyncio.run(run(args.repeats))


if __name__ == "__main__":
    main()
