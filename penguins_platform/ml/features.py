"""The feature and target transformers, fitted together and shipped together.

The same fitted object turns training rows and serving requests into model inputs, so
the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from penguins_platform.ml import schema

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder


def build_feature_transformer() -> ColumnTransformer:
    """Numbers: mean-impute then scale. Island and sex: mode-impute then one-hot.

    The one-hot encoder ignores unknown categories, so a penguin from a new island still
    gets a prediction instead of an error.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, list(schema.NUMERIC_FEATURES)),
            ("categorical", categorical, list(schema.CATEGORICAL_FEATURES)),
        ]
    )


def build_target_transformer() -> OrdinalEncoder:
    """Species to 0, 1, 2 in the fixed order of `schema.SPECIES`, whatever order the data has."""
    from sklearn.preprocessing import OrdinalEncoder

    return OrdinalEncoder(categories=[list(schema.SPECIES)], dtype=np.int64)


def feature_records(df: pd.DataFrame) -> list[dict[str, object]]:
    """Rows as the JSON records an endpoint takes: the six features, null for a missing one."""
    features = df[list(schema.FEATURES)].astype(object)
    return features.where(features.notna(), None).to_dict(orient="records")


def _categorical_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Features with None as the one missing marker, which SimpleImputer needs for text columns."""
    frame = df.reindex(columns=list(schema.FEATURES)).copy()
    for column in schema.CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype("object").where(frame[column].notna(), np.nan)
    return frame


@dataclass
class FittedTransformers:
    """The fitted feature transformer and target encoder: rows in, tensors out."""

    features: ColumnTransformer
    target: OrdinalEncoder

    @classmethod
    def fit(cls, df: pd.DataFrame) -> FittedTransformers:
        """Fit both transformers on `df` only: callers pass training rows, never evaluation rows."""
        features = build_feature_transformer().fit(_categorical_frame(df))
        target = build_target_transformer().fit(df[[schema.TARGET]])
        return cls(features=features, target=target)

    def transform_features(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.features.transform(_categorical_frame(df)), dtype="float32")

    def encode_target(self, df: pd.DataFrame) -> np.ndarray:
        return self.target.transform(df[[schema.TARGET]]).ravel()

    @property
    def feature_names(self) -> list[str]:
        return [str(name) for name in self.features.get_feature_names_out()]

    def summary(self) -> dict[str, dict[str, object]]:
        """What was learned: the imputed values and the scaling, for metadata and debugging."""
        numeric = self.features.named_transformers_["numeric"]
        categorical = self.features.named_transformers_["categorical"]
        imputer, scaler = (
            numeric.named_steps["simpleimputer"],
            numeric.named_steps["standardscaler"],
        )
        return {
            "numeric_means": dict(
                zip(schema.NUMERIC_FEATURES, map(float, imputer.statistics_), strict=True)
            ),
            "numeric_scales": dict(
                zip(schema.NUMERIC_FEATURES, map(float, scaler.scale_), strict=True)
            ),
            "categorical_modes": dict(
                zip(schema.CATEGORICAL_FEATURES, map(str, categorical[0].statistics_), strict=True)
            ),
            "categories": {
                column: [str(c) for c in cats]
                for column, cats in zip(
                    schema.CATEGORICAL_FEATURES, categorical[1].categories_, strict=True
                )
            },
        }
