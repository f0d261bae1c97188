"""Load & validate: YAML files -> Experiment model, every error with file:line and a fix."""
from harness.load.experiment import load_experiment, resolve_experiment_path

__all__ = ["load_experiment", "resolve_experiment_path"]
