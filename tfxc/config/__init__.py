"""Experiment configs: frozen dataclasses (`schema`) and strict JSON loading (`loading`)."""

from tfxc.config.loading import config_to_json, from_dict, load_config, save_config, to_dict
from tfxc.config.schema import ExperimentConfig

__all__ = ["ExperimentConfig", "config_to_json", "from_dict", "load_config", "save_config", "to_dict"]
