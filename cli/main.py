"""The `scoremesh` command: up, status, score, train, bench, features load."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

# The supervisor forks children while gRPC threads run; gRPC's fork handlers are not needed
# (children exec at once) and only log noise. Must be set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from pydantic import ValidationError

from mesh.config import ConfigError, MeshSettings


def _settings(args: argparse.Namespace) -> MeshSettings:
    overrides = {"state_dir": Path(args.state_dir)} if getattr(args, "state_dir", None) else {}
    try:
        settings = MeshSettings(**overrides)
    except (ConfigError, ValidationError) as error:
        raise SystemExit(f"scoremesh: invalid configuration: {error}") from None
    return settings.model_copy(update={"state_dir": settings.state_dir.resolve()})


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from training.quality_gate import QualityThresholds
    from training.train import DataQualityError, TrainOptions, train

    settings = _settings(args)
    try:
        limits = []
        for item in args.max_imbalance:
            label, _, ratio = item.partition("=")
            try:
                limits.append((label, float(ratio)))
            except ValueError:
                print(f"scoremesh: --max-imbalance: LABEL=RATIO, e.g. click=100 (got {item[:40]!r})", file=sys.stderr)
                return 2
        quality = QualityThresholds(label_imbalance=tuple(limits))
        written = train(settings.model_repository, settings.feature_dir,
                        TrainOptions(rows=args.rows, seed=args.seed, force=args.force, quality=quality))
    except DataQualityError as error:
        print(f"scoremesh: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"model version written: {path}")
    return 0


# ---------------------------------------------------------------- features
def cmd_features_load(args: argparse.Namespace) -> int:
    from services.features.settings import FeatureSettings
    from domain.features.store import open_store
    from domain.features.store.loader import LoadError, load_file

    settings = FeatureSettings(**({"state_dir": Path(args.state_dir)} if args.state_dir else {}))
    backend = args.backend or settings.store_backend
    if backend == "none":
        print("scoremesh: the online store is disabled (store_backend: none)", file=sys.stderr)
        return 1
    store = open_store(backend, settings.feature_dir / "online.sqlite", args.redis_url or settings.redis_url, timeout_s=5.0)
    try:
        counts = load_file(store, Path(args.file))
    except LoadError as error:
        print(f"scoremesh: nothing loaded: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"loaded {counts['ad']} ads and {counts['user']} users into the {backend} store")
    return 0


# ---------------------------------------------------------------- up & status
def cmd_up(args: argparse.Namespace) -> int:
    from cli.up import up

    return up(_settings(args), args.inference_replicas, args.tls)


def cmd_certs(args: argparse.Namespace) -> int:
    from mesh.certificates import CertificateAuthority

    ca = CertificateAuthority(args.out)  # kept when already there: certificates issued before stay valid
    for name in args.name:
        issued = ca.issue(name, args.host)
        print(f"{name}: {issued.cert} (key {issued.key}), signed by {issued.ca}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from cli.status import collect_status

    settings = _settings(args)
    status = asyncio.run(collect_status(settings))
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        if not status.running:
            print(f"no mesh running with state in {settings.state_dir}")
        for i in status.instances:
            print(f"{i.service:<11} {i.id:<13} {i.address or '-':<21} {i.status:<14} {i.workers:>2} worker{'s' if i.workers > 1 else ' '} {i.metrics}")
    return 0 if status.healthy else 1


# ---------------------------------------------------------------- score
def cmd_score(args: argparse.Namespace) -> int:
    from cli.score import score

    return score(_settings(args), args)


def cmd_routing(args: argparse.Namespace) -> int:
    from cli.routing import apply, show

    settings = _settings(args)
    return show(settings, args.json) if args.routing_command == "show" else apply(settings, Path(args.file), args.dry_run)


# ---------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from cli.simulate import run

    return run(_settings(args), args.requests, args.candidates, args.concurrency, args.seed, args.shift_after)


def cmd_models(args: argparse.Namespace) -> int:
    from cli.models import change, list_models

    settings = _settings(args)
    if args.models_command == "list":
        return list_models(settings)
    if args.models_command == "promote":
        return change(settings, "promote_version", f"{args.model}:{args.version}", args.reason, args.dry_run)
    return change(settings, "rollback_promotion", args.model, args.reason, args.dry_run)


def cmd_experiments(args: argparse.Namespace) -> int:
    from cli.experiments import show

    return show(_settings(args), args.route, args.window, args.json)


def cmd_weights(args: argparse.Namespace) -> int:
    from cli.weights import weights

    return weights(_settings(args), args.weights_command, args.model, getattr(args, "reason", ""), getattr(args, "json", False))


# ---------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from cli import bench

    settings = _settings(args)
    levels = tuple(int(c) for c in (args.concurrency or ("1,16,64" if args.mesh else "1,8,64")).split(","))
    if args.mesh:
        candidates = tuple(int(c) for c in args.candidates.split(","))
        return bench.mesh(settings, candidates, levels, args.seconds, Path(args.out), args.rounds)
    return bench.inference(settings, args.address, args.model, args.rows, levels, args.seconds, Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoremesh", description="ScoreMesh: ensemble scoring over a gRPC mesh")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--state-dir", help="state directory (default ./.scoremesh or $SCOREMESH_STATE_DIR)")
        return p

    up = with_state(sub.add_parser("up", help="run the whole mesh on this machine"))
    up.add_argument("--inference-replicas", type=int, default=2)
    up.add_argument("--tls", action="store_true",
                    help="run the whole mesh over mTLS: a local CA and per-instance certificates in <state-dir>/tls")
    up.set_defaults(func=cmd_up)

    certs = sub.add_parser("certs", help="a CA and certificates for a deployment's mTLS (docker-compose, Kubernetes)")
    certs.add_argument("--out", type=Path, required=True, help="folder for ca.pem/ca.key and <name>.pem/<name>.key (keys mode 0600)")
    certs.add_argument("--name", action="append", required=True, help="a certificate to issue (repeatable); also a DNS name in it")
    certs.add_argument("--host", action="append", default=[], help="another name or IP the certificates cover (repeatable)")
    certs.set_defaults(func=cmd_certs)

    status = with_state(sub.add_parser("status", help="every instance and its health"))
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    score = with_state(sub.add_parser("score", help="send one Score request"))
    score.add_argument("--data-type", choices=["search", "display", "conversion"], default="search")
    score.add_argument("--candidates", type=int, default=5)
    score.add_argument("--seed", type=int, default=0, help="seed of the synthetic request")
    score.add_argument("--request-id", default="")
    score.add_argument("--timeout", type=float, default=5.0)
    score.add_argument("--json", action="store_true")
    score.add_argument("--explain", action="store_true", help="also show which routing rule matched and why the earlier ones did not")
    score.add_argument("--caller", default="", help="who calls (x-scoremesh-caller: per-caller admission)")
    score.set_defaults(func=cmd_score)

    routing = sub.add_parser("routing", help="the router's routing configuration")
    routing_sub = routing.add_subparsers(dest="routing_command", required=True)
    show = with_state(routing_sub.add_parser("show", help="the configuration in effect, its version and source"))
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_routing)
    apply = with_state(routing_sub.add_parser("apply", help="replace the configuration (validated whole; admin token)"))
    apply.add_argument("file", help="a YAML file with rules, routes, default_route (and pipelines, admission)")
    apply.add_argument("--dry-run", action="store_true", help="validate only")
    apply.set_defaults(func=cmd_routing)

    simulate = with_state(sub.add_parser("simulate", help="drive the mesh with synthetic traffic and send the outcomes its ground truth draws"))
    simulate.add_argument("--requests", type=int, default=2000)
    simulate.add_argument("--candidates", type=int, default=5)
    simulate.add_argument("--concurrency", type=int, default=8)
    simulate.add_argument("--seed", type=int, default=1, help="seed of the requests and outcomes (request ids are sim-<seed>-<n>)")
    simulate.add_argument("--shift-after", type=int, default=None, help="the click model drifts after this many requests")
    simulate.set_defaults(func=cmd_simulate)

    models = sub.add_parser("models", help="model versions and their stages: staging, production, archived")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    with_state(models_sub.add_parser("list", help="every version, its state on a replica and its stage")).set_defaults(func=cmd_models)
    promote = with_state(models_sub.add_parser("promote", help="make a staging version production, through the gate (admin token)"))
    promote.add_argument("model")
    promote.add_argument("version")
    rollback = with_state(models_sub.add_parser("rollback", help="make the previous production version production again (admin token)"))
    rollback.add_argument("model")
    for command in (promote, rollback):
        command.add_argument("--reason", default="")
        command.add_argument("--dry-run", action="store_true", help="check and audit, change nothing")
        command.set_defaults(func=cmd_models)

    experiments = sub.add_parser("experiments", help="A/B and canary splits compared on feedback")
    experiments_sub = experiments.add_subparsers(dest="experiments_command", required=True)
    show_experiments = with_state(experiments_sub.add_parser("show", help="per arm: rates, log loss, AUC with intervals, tests, verdict"))
    show_experiments.add_argument("--route", default="", help="one route (default: every route with outcomes)")
    show_experiments.add_argument("--window", type=float, default=3600.0, help="seconds of outcomes")
    show_experiments.add_argument("--json", action="store_true")
    show_experiments.set_defaults(func=cmd_experiments)

    weights = sub.add_parser("weights", help="online ensemble weighting: learned weights, switched per model")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    for name, text in (("show", "whether a model learns, the weights each version serves and their history"),
                       ("enable", "learn the model's ensemble weights from feedback (admin token)"),
                       ("disable", "stop learning (the weights serving stay; admin token)"),
                       ("rollback", "back to the trained weights, learning off (admin token)")):
        command = with_state(weights_sub.add_parser(name, help=text))
        command.add_argument("model")
        if name == "show":
            command.add_argument("--json", action="store_true")
        else:
            command.add_argument("--reason", default="", help="why (kept with the change)")
        command.set_defaults(func=cmd_weights)

    train = with_state(sub.add_parser("train", help="train the ensembles and write new versions"))
    train.add_argument("--rows", type=int, default=150_000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--force", action="store_true", help="train even if the data-quality gate fails")
    train.add_argument("--max-imbalance", action="append", default=[], metavar="LABEL=RATIO",
                       help="the data-quality gate's class-imbalance limit for one label (default 10 for every label), e.g. click=100")
    train.set_defaults(func=cmd_train)

    bench = with_state(sub.add_parser("bench", help="load tests against the floor of bare gRPC; prints throughput and latency"))
    bench.add_argument("--mesh", action="store_true", help="Score through the router (the running mesh, or one started for the run)")
    bench.add_argument("--candidates", default="5,100", help="--mesh: comma-separated candidate counts")
    bench.add_argument("--rounds", type=int, default=3, help="--mesh: rounds of every level, mesh and floor in turn (the median is reported)")
    bench.add_argument("--address", help="an inference server to test (default: start a dedicated one)")
    bench.add_argument("--model", default="ctr_ensemble")
    bench.add_argument("--rows", type=int, default=32, help="feature rows per request")
    bench.add_argument("--concurrency", help="comma-separated concurrency levels (default 1,8,64; --mesh: 1,16,64)")
    bench.add_argument("--seconds", type=float, default=5.0, help="duration of each level")
    bench.add_argument("--out", default="bench-results", help="folder for the JSON, markdown and plot")
    bench.set_defaults(func=cmd_bench)

    features = sub.add_parser("features", help="the online feature store")
    features_sub = features.add_subparsers(dest="features_command", required=True)
    load = with_state(features_sub.add_parser("load", help="bulk-load entities from a JSON-lines file"))
    load.add_argument("file", help='lines like {"kind": "ad", "id": "ad7", "ad_ctr": 0.03}')
    load.add_argument("--backend", choices=["sqlite", "redis"], help="default: the features service's setting")
    load.add_argument("--redis-url", help="default: the features service's setting")
    load.set_defaults(func=cmd_features_load)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
