from tfxc.export.saved_model import export_saved_model
from tfxc.export.serving_modules import ServingModule
from tfxc.export.served import ServedModel, extra_asset

__all__ = ["ServedModel", "ServingModule", "export_saved_model", "extra_asset"]
