"""Only what pyproject.toml cannot say: the top-level experiments/ and topologies/ folders go into
the wheel as harness/shipped/experiments and harness/shipped/topologies (found by harness.shipped),
so a non-editable `pip install .` runs the shipped experiments without the source checkout."""
from setuptools import find_namespace_packages, setup

SHIPPED = {"harness.shipped.experiments": "experiments", "harness.shipped.topologies": "topologies"}

setup(packages=[*find_namespace_packages(include=["harness*"], exclude=["*__pycache__"]), *SHIPPED], package_dir=SHIPPED)
