"""Trained models, whatever holds them: `load(path)` gives a `Predictor` (`tfxc.predictors.predictor`)."""

from tfxc.predictors.inputs import EncodedImages
from tfxc.predictors.predictor import Classifier, Predictions, Predictor, load

__all__ = ["Classifier", "EncodedImages", "Predictions", "Predictor", "load"]
