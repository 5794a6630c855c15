"""Loading a model safely: skops with an explicit trust list, the artifact's sha256 pinned by its
card, and a sanity check of every tree against the card."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skops.io
from skops.io.exceptions import UntrustedTypesFoundException

from service.model.card import CardError, ModelCard

# A model directory: the artifact, its card beside it, and the holdout rows training kept back.
ARTIFACT_NAME = "model.skops"
CARD_NAME = "model.card.json"
HOLDOUT_NAME = "holdout.csv"

# Every non-builtin type a housing GradientBoostingRegressor artifact holds. skops also trusts
# its own defaults (builtins, numpy, scikit-learn estimator classes); anything else — a custom
# class, an arbitrary function — is refused. Never derived from the file being loaded.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
)


class ModelLoadError(Exception):
    """The model cannot be served; the message is one line, printed after "cannot load model:"."""


@dataclass(frozen=True)
class LoadedModel:
    card: ModelCard
    estimator: object

    def predict(self, X: np.ndarray) -> np.ndarray:
        """float64 (n, n_features) in card feature order -> float64 (n,)."""
        return np.asarray(self.estimator.predict(X), dtype=np.float64)  # type: ignore[attr-defined]


def load_model(artifact_path: Path, card_path: Path | None = None) -> LoadedModel:
    """Load and verify a skops artifact against its card (default: sibling model.card.json)."""
    artifact_path = Path(artifact_path)
    if card_path is None:
        _check_artifact_path(artifact_path)
        card_path = artifact_path.with_name(CARD_NAME)
        if not card_path.is_file():
            raise ModelLoadError(
                f"no model card beside the artifact {artifact_path}: expected {card_path}"
            )
    try:
        card = ModelCard.load(Path(card_path))
    except CardError as exc:
        raise ModelLoadError(str(exc)) from exc
    try:
        artifact = artifact_path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read artifact {artifact_path}: {exc.strerror}") from exc
    actual_sha = hashlib.sha256(artifact).hexdigest()
    if actual_sha != card.artifact_sha256:
        raise ModelLoadError(
            f"artifact {artifact_path} has sha256 {actual_sha[:12]}..., its card {card_path} "
            f"expects {card.artifact_sha256[:12]}...: the file was modified, truncated or replaced"
        )
    estimator = _load_trusted(artifact, artifact_path)
    _check_matches_card(estimator, card, artifact_path)
    return LoadedModel(card=card, estimator=estimator)


def _check_artifact_path(path: Path) -> None:
    """A path that cannot be the artifact is named as what it is, with what was expected:
    otherwise a directory or the card itself gets a message about another file, or tampering."""
    expected = f"expected the model's .skops artifact, with its card {CARD_NAME} beside it"
    if path.is_dir():
        inside = path / ARTIFACT_NAME
        hint = f" ({inside} is there)" if inside.is_file() else ""
        raise ModelLoadError(f"{path} is a directory; {expected}{hint}")
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist; {expected}")
    if path.name == CARD_NAME:
        artifact = path.with_name(ARTIFACT_NAME)
        hint = f": {artifact}" if artifact.is_file() else ""
        raise ModelLoadError(
            f"{path} is the model card, not the artifact; give the .skops artifact beside it{hint}"
        )
    if path.suffix == ".json":
        raise ModelLoadError(f"{path} is a JSON file; {expected}")


def _load_trusted(artifact: bytes, artifact_path: Path) -> object:
    try:
        return skops.io.loads(artifact, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelLoadError(
            f"artifact {artifact_path} contains types this service does not trust: "
            f"{_untrusted_names(exc)}"
        ) from exc
    except Exception as exc:
        # Decoding a damaged or foreign file can fail in many ways (zip, JSON, numpy, imports);
        # each is the same outcome for the operator.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelLoadError(
            f"artifact {artifact_path} is not a readable skops file: {reason}"
        ) from exc


def _untrusted_names(exc: UntrustedTypesFoundException) -> str:
    # skops raises it with the set of offending type names as its only argument.
    names = exc.args[0] if exc.args and isinstance(exc.args[0], set | list) else exc.args
    return ", ".join(sorted(map(str, names)))


def _check_matches_card(estimator: object, card: ModelCard, artifact_path: Path) -> None:
    kind = type(estimator)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    if type_name != card.model_type:
        raise ModelLoadError(
            f"artifact {artifact_path} holds a {type_name}, its card says {card.model_type}"
        )
    if not callable(getattr(estimator, "predict", None)):
        raise ModelLoadError(f"artifact {artifact_path} holds a {type_name} without predict()")
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise ModelLoadError(f"artifact {artifact_path} holds an unfitted {type_name}")
    if n_features != len(card.features):
        raise ModelLoadError(
            f"artifact {artifact_path} expects {n_features} features, "
            f"its card lists {len(card.features)}"
        )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and tuple(map(str, names)) != card.feature_names:
        raise ModelLoadError(
            f"artifact {artifact_path} was fitted on features {','.join(map(str, names))}, "
            f"its card lists {','.join(card.feature_names)}"
        )
    for index, tree in enumerate(_fitted_trees(estimator)):
        problem = _tree_index_problem(tree, n_features)
        if problem:
            raise ModelLoadError(f"artifact {artifact_path}: tree {index} {problem}")


def _fitted_trees(estimator: object) -> Iterator[object]:
    """The sklearn Tree objects of a top-level tree or tree ensemble: the models `mlapi train`
    builds, whose trees all read the service's input columns directly. Trees nested deeper (in a
    pipeline, say) are not walked; for those the card's sha256 pin is the only safeguard."""
    if hasattr(estimator, "tree_"):
        yield estimator.tree_
    for member in np.ravel(np.asarray(getattr(estimator, "estimators_", ()), dtype=object)):
        if hasattr(member, "tree_"):
            yield member.tree_


def _tree_index_problem(tree: object, n_features: int) -> str | None:
    """scikit-learn follows a Tree's child and feature indices without bounds checks, so a
    crafted artifact could crash predict(); skops therefore does not trust Tree by default.
    We trust it for artifacts pinned by a card, and check the indices as a second line:
    children point forward within the node array (no cycles, no out-of-range reads), leaves
    have none, splits use one of the service's input columns."""
    left = np.asarray(tree.children_left)  # type: ignore[attr-defined]
    right = np.asarray(tree.children_right)  # type: ignore[attr-defined]
    feature = np.asarray(tree.feature)  # type: ignore[attr-defined]
    nodes = np.arange(len(left))
    if not len(left) == len(right) == len(feature) == tree.node_count > 0:  # type: ignore[attr-defined]
        return "has inconsistent node arrays"
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        return "has a node with only one child"
    split = ~leaf
    for children in (left, right):
        if not ((children[split] > nodes[split]) & (children[split] < len(left))).all():
            return "has a child index out of range"
    if not ((feature[split] >= 0) & (feature[split] < n_features)).all():
        return "splits on a feature index out of range"
    return None
