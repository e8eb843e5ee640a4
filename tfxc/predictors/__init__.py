"""Trained models, whatever holds them: `load(path)` gives a `Predictor` (`tfxc.predictors.predictor`)."""

from tfxc.compat.deprecations import renamed
from tfxc.predictors.inputs import EncodedImages
from tfxc.predictors.predictor import Predictions, Predictor, load

__all__ = ["EncodedImages", "Predictions", "Predictor", "load"]


def __getattr__(name):
    """Names of earlier releases (`Classifier`), with a warning: `tfxc.compat.deprecations.RENAMED`."""
    return renamed(__name__, name, globals())
