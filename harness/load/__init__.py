"""Load & validate: YAML files -> Experiment model, every error with file:line and a fix."""
from harness.load.experiment import load_experiment, resolve_experiment_path
from harness.load.matrix import Cell, load_cells

__all__ = ["Cell", "load_cells", "load_experiment", "resolve_experiment_path"]
