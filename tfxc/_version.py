"""The package's version: one line that `setup.cfg`, `tfxc.__version__` and a model directory's run info read."""

__version__ = "0.1.0"
