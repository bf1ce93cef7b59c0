"""`scoremesh train`: train the ensembles' members on the synthetic ads data and write new
model versions into the repository.

Steps: generate the data set (and the online store's ad/user tables, bulk-loaded into the
store serving will read), run the data-quality gate, fit the feature schema on the training
split and store it as a version, build every matrix with that fitted schema (the very code
`FeatureService/Extract` runs, so training and serving cannot drift apart), train the members,
fit nothing more than the configured combination, and write each ensemble as a new version
whose config.yaml names the schema version it was trained with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from kernels.dispatch import score_ensemble
from training.quality_gate import QualityReport, QualityThresholds, check
from domain.features.schema import FeatureSchema, load_spec
from domain.features.schema_store import SchemaStore
from domain.features.store.loader import load_file, write_entities
from domain.features.store.sqlite_store import SqliteStore
from training.synthetic import observable_probabilities, Dataset, generate, make_world
from domain.models import quality as metrics
from domain.models.baseline import make_baseline, write_baseline
from domain.models.stages import stages, write_stage
from domain.models.repository import load_model, next_version, publish, stage_model, write_config


@dataclass(frozen=True)
class MemberSpec:
    name: str
    hidden: int  # 0 = logistic regression


@dataclass(frozen=True)
class EnsembleSpec:
    name: str
    label: str
    method: str
    members: tuple[MemberSpec, ...]
    weights: tuple[float, ...] = ()


# The example ensembles of shared/REFERENCE.md, plus a stacked CTR ensemble over the same
# members (a logistic meta-model fitted on held-out data instead of fixed weights).
CTR_MEMBERS = (MemberSpec("ctr_v1", 0), MemberSpec("ctr_v2", 32))
ENSEMBLES = (
    EnsembleSpec("ctr_ensemble", "click", "weighted_average", CTR_MEMBERS, (1.0, 1.2)),
    EnsembleSpec("cvr_ensemble", "conversion", "averaging", (MemberSpec("cvr_v1", 8), MemberSpec("cvr_v2", 16))),
    EnsembleSpec("quality_ensemble", "engagement", "dynamic", (MemberSpec("quality_v1", 0), MemberSpec("quality_v2", 24), MemberSpec("quality_v3", 8))),
    EnsembleSpec("ctr_stacking", "click", "stacking", CTR_MEMBERS),
)


@dataclass(frozen=True)
class TrainOptions:
    rows: int = 150_000
    """~19 s to train every ensemble on 2 cores; 15,000 rows in each held-out split."""
    seed: int = 0
    max_epochs: int = 15
    patience: int = 3
    batch_size: int = 256
    learning_rate: float = 0.003
    force: bool = False  # train even when the data-quality gate fails
    quality: QualityThresholds = QualityThresholds()


SPLIT_NAMES = ("fit", "early_stopping", "calibration", "combination", "test")
SPLITS = (0.6, 0.1, 0.1, 0.1, 0.1)


class DataQualityError(RuntimeError):
    def __init__(self, report: QualityReport) -> None:
        super().__init__(f"{report}\nrefusing to train on failing data (use --force to override)")
        self.report = report


def _network(input_dim: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Sequential(nn.Linear(input_dim, 1))
    return nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def _state(name: str, hidden: int, network: nn.Module) -> dict[str, torch.Tensor]:
    layers = [m for m in network if isinstance(m, nn.Linear)]
    if hidden == 0:
        return {f"{name}.linear.weight": layers[0].weight.detach().clone(), f"{name}.linear.bias": layers[0].bias.detach().clone()}
    return {
        f"{name}.hidden.weight": layers[0].weight.detach().clone(),
        f"{name}.hidden.bias": layers[0].bias.detach().clone(),
        f"{name}.output.weight": layers[1].weight.detach().clone(),
        f"{name}.output.bias": layers[1].bias.detach().clone(),
    }


def train_member(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
    hidden: int, options: TrainOptions, seed: int,
) -> tuple[nn.Module, int]:
    """Adam on binary cross-entropy, early stopping on validation loss; returns the best net."""
    torch.manual_seed(seed)
    network = _network(x_train.shape[1], hidden)
    optimiser = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    for epoch in range(options.max_epochs):
        network.train()
        for index in torch.randperm(len(x_train), generator=generator).split(options.batch_size):
            optimiser.zero_grad()
            loss_fn(network(x_train[index]).squeeze(1), y_train[index]).backward()
            optimiser.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(x_val).squeeze(1), y_val))
        if val_loss < best_loss - 1e-5:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= options.patience:
                break
    network.load_state_dict(best_state)
    return network, best_epoch + 1


def _fit(parameters: list[torch.Tensor], loss: Callable[[], torch.Tensor], steps: int = 100) -> None:
    optimiser = torch.optim.LBFGS(parameters, lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        value = loss()
        value.backward()
        return value

    optimiser.step(closure)


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Platt scaling: a, b minimising log loss of sigmoid(a z + b) on held-out data."""
    a = torch.ones((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    _fit([a, b], lambda: nn.functional.binary_cross_entropy_with_logits(a * logits + b, labels))
    return float(a.detach()), float(b.detach())


def fit_combination(ensemble: EnsembleSpec, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """The combination's parameters, fitted on held-out member logits [N, M]:
    weighted/logit averaging -> positive weights (softplus) minimising log loss, starting from
    the spec's weights; stacking -> a logistic meta-model over the member logits."""
    m = logits.shape[1]
    if ensemble.method in ("weighted_average", "logit_averaging"):
        initial = torch.tensor(ensemble.weights or (1.0,) * m)
        theta = torch.log(torch.expm1(initial)).requires_grad_(True)  # softplus^-1

        def loss():
            w = nn.functional.softplus(theta)
            if ensemble.method == "weighted_average":
                p = (torch.sigmoid(logits) * w).sum(1) / w.sum()
                return nn.functional.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), labels)
            return nn.functional.binary_cross_entropy_with_logits((logits * w).sum(1) / w.sum(), labels)

        _fit([theta], loss)
        weights = nn.functional.softplus(theta).detach()
        weights = weights / weights.mean()  # scale-free: keep them near 1 for readability
        return {"weights": [round(float(w), 6) for w in weights]}
    if ensemble.method == "stacking":
        v = torch.full((m,), 1.0 / m, requires_grad=True)
        c = torch.zeros((), requires_grad=True)
        _fit([v, c], lambda: nn.functional.binary_cross_entropy_with_logits(logits @ v + c, labels) + 1e-4 * (v**2).sum())
        return {"stacking_weights": [round(float(x), 6) for x in v.detach()], "stacking_bias": round(float(c.detach()), 6)}
    return {"weights": list(ensemble.weights)} if ensemble.weights else {}


def prepare_features(feature_dir: Path, data: Dataset, tables: dict, spec: FeatureSchema | None = None,
                     progress: Callable[[str], None] = print) -> FeatureSchema:
    """Load the store's tables (through the bulk loader) and fit + store the schema."""
    entities = feature_dir / "entities.jsonl"
    write_entities(entities, tables)
    store = SqliteStore(feature_dir / "online.sqlite")
    try:
        counts = load_file(store, entities)
    finally:
        store.close()
    progress(f"online store: loaded {counts['ad']} ads and {counts['user']} users from {entities}")
    fitted = SchemaStore(feature_dir).save((spec or load_spec()).fit(data.batch, "0"))
    progress(f"feature schema {fitted.name} v{fitted.version}: {fitted.dim} columns")
    return fitted


def train(
    repo: Path,
    feature_dir: Path,
    options: TrainOptions = TrainOptions(),
    ensembles: tuple[EnsembleSpec, ...] = ENSEMBLES,
    progress: Callable[[str], None] = print,
) -> list[Path]:
    """Train every ensemble and write one new version of each; returns the version folders."""
    world = make_world(options.seed)
    data = generate(options.rows, seed=options.seed, world=world)
    report = check(data.batch, data.labels, options.quality)
    progress(str(report))
    if not report.passed and not options.force:
        raise DataQualityError(report)
    # A split per job, so none is judged on data it was fitted on: members are fitted on the
    # first, stop early on the second, are calibrated on the third; the combination is fitted on
    # the fourth; the test split only measures.
    train_set, stop_set, calibration_set, combination_set, test_set = data.split(SPLITS)
    schema = prepare_features(feature_dir, train_set, world.store_tables, progress=progress)

    def tensors(ds: Dataset, label: str) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(schema.transform(ds.batch)), torch.from_numpy(ds.labels[label])

    # What the test rows' labels allow at best: from the latent traits (the ground truth), and
    # from what the features carry of them (the reachable optimum; training.synthetic).
    observable = observable_probabilities(test_set.batch, world)
    written = []
    trained: dict[str, tuple[nn.Module, int]] = {}  # members shared by several ensembles train once
    total = len({m.name for e in ensembles for m in e.members})
    bar = tqdm(total=total, desc="training members", unit="member", disable=None)
    for ensemble in ensembles:
        x_train, y_train = tensors(train_set, ensemble.label)
        x_stop, y_stop = tensors(stop_set, ensemble.label)
        x_cal, y_cal = tensors(calibration_set, ensemble.label)
        x_comb, y_comb = tensors(combination_set, ensemble.label)
        x_test, y_test = tensors(test_set, ensemble.label)
        state: dict[str, torch.Tensor] = {}
        members_config, member_metrics, combination_logits = [], {}, []
        for k, member in enumerate(ensemble.members):
            if member.name not in trained:
                started = time.perf_counter()
                trained[member.name] = train_member(x_train, y_train, x_stop, y_stop, member.hidden, options, options.seed * 1000 + len(trained))
                bar.update(1)
                progress(f"[{len(trained)}/{total}] {member.name}: {trained[member.name][1]} epochs ({time.perf_counter() - started:.1f}s)")
            network, epochs = trained[member.name]
            state.update(_state(member.name, member.hidden, network))
            with torch.no_grad():
                z_cal = network(x_cal).squeeze(1)
                z_comb = network(x_comb).squeeze(1)
                z_test = network(x_test).squeeze(1)
            a, b = fit_calibration(z_cal, y_cal)  # Platt scaling on its own held-out split
            combination_logits.append(a * z_comb + b)
            member_metrics[member.name] = metrics.summary(y_test.numpy(), torch.sigmoid(a * z_test + b).numpy())
            members_config.append({"name": member.name, "hidden": member.hidden, "calibration": {"a": round(a, 6), "b": round(b, 6)}, "epochs": epochs})
        combination = fit_combination(ensemble, torch.stack(combination_logits, dim=1), y_comb)
        version = next_version(repo, ensemble.name)
        config = {
            "name": ensemble.name,
            "version": version,
            "label": ensemble.label,
            "input_dim": schema.dim,
            "feature_schema": {"name": schema.name, "version": schema.version},
            "ensemble": {"method": ensemble.method, "vote_threshold": 0.5, **combination},
            "members": members_config,
            "outputs": ["score", "member_scores", "confidence"],
            "training": {"seed": options.seed, "rows": options.rows, "splits": dict(zip(SPLIT_NAMES, SPLITS)),
                         "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "data_quality": {"passed": report.passed, "problems": list(report.problems)}},
            "metrics": {"members": member_metrics},
        }
        staging = stage_model(repo, config, state)
        # Judge the ensemble as it will be served: loaded back from disk.
        loaded = load_model(staging)
        with torch.no_grad():
            score = score_ensemble(x_test, loaded.packed).score.numpy()
        config["metrics"]["ensemble"] = metrics.summary(y_test.numpy(), score)
        config["metrics"]["ground_truth"] = metrics.summary(y_test.numpy(), test_set.true_p[ensemble.label])
        config["metrics"]["observable_optimum"] = metrics.summary(y_test.numpy(), observable[ensemble.label])
        write_config(staging, config)
        write_baseline(staging, make_baseline(x_test.numpy(), score, seed=options.seed))  # what drift is measured against
        # A model's first version serves at once; later ones wait in staging for promotion (the
        # stage is written before the version becomes visible, so no poller sees it without one).
        first = "production" not in stages(repo / ensemble.name).values()
        write_stage(staging, "production" if first else "staging",
                    "the model's first version" if first else "trained: serves through a split or shadow until promoted")
        path = publish(staging)
        progress(
            f"wrote {ensemble.name} v{version} ({'production' if first else 'staging: promote with `scoremesh models promote`'}): test AUC {config['metrics']['ensemble']['auc']:.4f}, "
            f"log loss {config['metrics']['ensemble']['log_loss']:.4f} "
            f"(ground truth {config['metrics']['ground_truth']['auc']:.4f}, {config['metrics']['ground_truth']['log_loss']:.4f}; "
            f"reachable from the features {config['metrics']['observable_optimum']['auc']:.4f}, "
            f"{config['metrics']['observable_optimum']['log_loss']:.4f})"
        )
        written.append(path)
    bar.close()
    return written
