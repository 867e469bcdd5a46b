"""How to train a model version: the recipe read from its registered ``parameters``. Pure.

A retrain trains the way the champion was trained. A champion whose registered ``parameters``
name no catalogue estimator (a model its team trained and registered) is retrained as itself:
``"estimator": "champion"``, a fresh :func:`sklearn.base.clone` of the champion's fitted
estimator (same class, same hyper-parameters, any scikit-learn estimator or pipeline) fitted on
the new data. An ask may change only ``test_fraction`` and ``seed`` of such a retrain, and a
``random_state`` the champion left unset is seeded, so a rerun gives the same bytes. A champion
the registry trained from a catalogue recipe (its parameters name the estimator) is retrained
from that recipe, and naming a catalogue estimator in a retrain ask changes the family on
purpose. A recipe has this schema (every key optional)::

    {
      "estimator": "logistic_regression",  # champion | logistic_regression | gaussian_nb
      "imputer": "median",                 # numeric missing values: mean | median
      "scale": true,                       # standardise numeric features
      "test_fraction": 0.25,               # share of the snapshot held out for the gate
      "seed": 0,                           # every random choice of split and training
      "C": 1.0                             # any other key: a hyper-parameter of the estimator
    }

Categorical features are one-hot encoded, with missing values as a level of their own and
levels unseen in training ignored when scoring. The catalogue is small on purpose: any other
scikit-learn estimator is retrained as a clone of the champion. The catalogue's estimators are
classifiers: a regression model (``task`` regression) is always retrained as a clone of its
champion, which works for any scikit-learn regressor or pipeline ending in one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import JsonValue
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from contracts.drift import FeatureKind
from contracts.registry import ModelTask, MonitoringSpec

__all__ = [
    "CHAMPION",
    "ESTIMATORS",
    "Recipe",
    "RecipeError",
    "build_pipeline",
    "clone_champion",
    "parse_recipe",
]

CHAMPION = "champion"
"""The recipe estimator that means: a fresh clone of the champion's own estimator."""

ESTIMATORS: dict[str, Any] = {
    "logistic_regression": LogisticRegression,
    "gaussian_nb": GaussianNB,
}
"""Estimator names a recipe may use, and their scikit-learn classes."""

_DEFAULT_HYPERPARAMETERS: dict[str, dict[str, JsonValue]] = {
    "logistic_regression": {"max_iter": 1000},
    "gaussian_nb": {},
}
_SEEDED = {"logistic_regression"}  # estimators taking random_state
_RECIPE_KEYS = {"estimator", "imputer", "scale", "test_fraction", "seed"}
_SET_BY_RECIPE = {"random_state", "n_jobs", "verbose", "warm_start"}
_MISSING_LEVEL = "(missing)"


class RecipeError(ValueError):
    """Training parameters that do not make a recipe; the message names the key."""


@dataclass(frozen=True)
class Recipe:
    """A complete, validated way to train: what the registry records as ``parameters``."""

    estimator: str = "logistic_regression"
    imputer: str = "median"
    scale: bool = True
    test_fraction: float = 0.25
    seed: int = 0
    hyperparameters: dict[str, JsonValue] = field(default_factory=dict)

    def parameters(self) -> dict[str, JsonValue]:
        """Return the recipe in the registry's flat form, keys sorted (a stable cache input)."""
        flat: dict[str, JsonValue] = {
            "estimator": self.estimator,
            "imputer": self.imputer,
            "scale": self.scale,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            **self.hyperparameters,
        }
        if self.estimator == CHAMPION:  # the clone keeps the champion's own preprocessing
            del flat["imputer"], flat["scale"]
        return dict(sorted(flat.items()))


def parse_recipe(
    parameters: Mapping[str, JsonValue],
    overrides: Mapping[str, JsonValue] | None = None,
    *,
    task: ModelTask = ModelTask.CLASSIFICATION,
) -> Recipe:
    """Read a recipe from registered parameters, with a request's overrides on top; a
    regression model's recipe must clone its champion (the catalogue holds classifiers).

    >>> parse_recipe({"estimator": "logistic_regression", "C": 0.5}).parameters()["C"]
    0.5
    >>> parse_recipe({"C": 1.0}, {"estimator": "gaussian_nb"}).parameters()["estimator"]
    'gaussian_nb'
    >>> parse_recipe({"n_estimators": 300}).parameters()
    {'estimator': 'champion', 'seed': 0, 'test_fraction': 0.25}
    """
    asked = (overrides or {}).get("estimator")
    if task is ModelTask.REGRESSION and asked not in (None, CHAMPION):
        raise RecipeError(
            f"estimator {asked!r}: the catalogue holds classifiers; a regression model is "
            f"retrained as a clone of its champion ({CHAMPION!r})"
        )
    if task is ModelTask.REGRESSION:
        return _champion_recipe(parameters, overrides or {})
    if asked == CHAMPION or (asked is None and parameters.get("estimator") not in ESTIMATORS):
        return _champion_recipe(parameters, overrides or {})
    merged = {**parameters, **(overrides or {})}
    estimator = merged.get("estimator", "logistic_regression")
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise RecipeError(f"estimator {estimator!r} is not one of {', '.join(sorted(ESTIMATORS))}")
    if estimator != parameters.get("estimator", "logistic_regression"):
        # Another estimator's hyper-parameters would not apply: only the overrides carry over.
        merged = {key: merged[key] for key in {*_RECIPE_KEYS, *(overrides or {})} if key in merged}
    imputer = merged.get("imputer", "median")
    if imputer not in ("mean", "median"):
        raise RecipeError(f"imputer {imputer!r} is not one of mean, median")
    scale = merged.get("scale", True)
    if not isinstance(scale, bool):
        raise RecipeError(f"scale must be true or false, not {scale!r}")
    test_fraction, seed = _split_keys(merged)
    hyperparameters = dict(_DEFAULT_HYPERPARAMETERS[estimator])
    allowed = set(ESTIMATORS[estimator]().get_params()) - _SET_BY_RECIPE
    for key, value in merged.items():
        if key in _RECIPE_KEYS:
            continue
        if key not in allowed:
            raise RecipeError(
                f"{key!r} is not a hyper-parameter of {estimator} "
                f"(known: {', '.join(sorted(allowed))})"
            )
        hyperparameters[key] = value
    recipe = Recipe(
        estimator=estimator,
        imputer=str(imputer),
        scale=scale,
        test_fraction=float(test_fraction),
        seed=seed,
        hyperparameters=dict(sorted(hyperparameters.items())),
    )
    try:
        # scikit-learn checks hyper-parameter values when fitting: a fit on four rows finds a
        # bad value now, when the ask can be refused, rather than after the run has started.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _estimator(recipe).fit(np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([0, 1, 0, 1]))
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{estimator}: {error}") from None
    return recipe


def _split_keys(merged: Mapping[str, JsonValue]) -> tuple[float, int]:
    test_fraction = merged.get("test_fraction", 0.25)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0.05 <= test_fraction <= 0.5
    ):
        raise RecipeError(f"test_fraction must be a number from 0.05 to 0.5, not {test_fraction!r}")
    seed = merged.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RecipeError(f"seed must be a non-negative integer, not {seed!r}")
    return float(test_fraction), seed


def _champion_recipe(
    parameters: Mapping[str, JsonValue], overrides: Mapping[str, JsonValue]
) -> Recipe:
    """The recipe that clones the champion: split keys from the registered parameters and the
    ask, hyper-parameters from the ask alone (the clone already carries the champion's)."""
    foreign = sorted(set(overrides) - {"estimator", "test_fraction", "seed"})
    if foreign:
        raise RecipeError(
            f"{', '.join(map(repr, foreign))}: the champion's own estimator is retrained as it "
            "is (a clone with its parameters); to change parameters or preprocessing, name an "
            f"estimator ({', '.join(sorted(ESTIMATORS))})"
        )
    split = {k: v for k, v in parameters.items() if k in ("test_fraction", "seed")}
    test_fraction, seed = _split_keys({**split, **overrides})
    return Recipe(estimator=CHAMPION, test_fraction=test_fraction, seed=seed)


def clone_champion(recipe: Recipe, champion: Any) -> Any:
    """Return an unfitted clone of the champion's estimator (same class and parameters), every
    ``random_state`` the champion left unset seeded with the recipe's seed."""
    estimator = clone(champion)
    unseeded = {
        name: recipe.seed
        for name, value in estimator.get_params(deep=True).items()
        if (name == "random_state" or name.endswith("__random_state")) and value is None
    }
    if unseeded:
        estimator.set_params(**unseeded)
    return estimator


def _estimator(recipe: Recipe) -> Any:
    options: dict[str, Any] = dict(recipe.hyperparameters)
    if recipe.estimator in _SEEDED:
        options["random_state"] = recipe.seed
    return ESTIMATORS[recipe.estimator](**options)


def build_pipeline(recipe: Recipe, spec: MonitoringSpec) -> Pipeline:
    """Return the unfitted scikit-learn pipeline a recipe describes for a spec's features.

    Its input is what the scorer feeds a model: a float matrix (missing values NaN) when every
    feature is numeric, else an object matrix (missing values ``None``), columns in spec order.
    """
    numeric = [i for i, f in enumerate(spec.features) if f.kind is FeatureKind.NUMERIC]
    categorical = [i for i, f in enumerate(spec.features) if f.kind is not FeatureKind.NUMERIC]
    numeric_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy=recipe.imputer, keep_empty_features=True))
    ]
    if recipe.scale:
        numeric_steps.append(("scale", StandardScaler()))
    if not categorical:
        return Pipeline([*numeric_steps, ("model", _estimator(recipe))])
    none_to_nan = SimpleImputer(
        missing_values=None, strategy="constant", fill_value=np.nan, keep_empty_features=True
    )
    levels = Pipeline(
        [
            (
                "impute",
                SimpleImputer(
                    missing_values=None,
                    strategy="constant",
                    fill_value=_MISSING_LEVEL,
                    keep_empty_features=True,
                ),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    transformers: list[tuple[str, Any, list[int]]] = [("categorical", levels, categorical)]
    if numeric:
        numbers = Pipeline([("missing", none_to_nan), *numeric_steps])
        transformers.insert(0, ("numeric", numbers, numeric))
    return Pipeline([("features", ColumnTransformer(transformers)), ("model", _estimator(recipe))])
