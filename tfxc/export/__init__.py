from tfxc.export.saved_model import export_saved_model
from tfxc.export.serving_modules import ServingModule
from tfxc.export.served import ServedModel, extra_asset

# What `tfxc.export --format` and `Predictor.export(format=...)` write: a SavedModel, or the ONNX twin
# (`tfxc.export.onnx`).
SAVED_MODEL, ONNX = "saved_model", "onnx"
FORMATS = (SAVED_MODEL, ONNX)

__all__ = ["FORMATS", "ONNX", "SAVED_MODEL", "ServedModel", "ServingModule", "export_saved_model", "extra_asset"]
