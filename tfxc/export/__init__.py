from tfxc.export.saved_model import ServingModule, export_saved_model, extra_asset

__all__ = ["ServingModule", "export_saved_model", "extra_asset"]
