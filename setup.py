"""Packages: every ``fiqa.*`` found in the tree, plus the repository's ``weights/`` installed as
``fiqa.model_weights`` and its ``calibrations/`` as ``fiqa.model_weights.calibrations`` (data
files and folder mapping are declared in pyproject.toml; naming the sub-folder a package keeps
setuptools from warning that an importable folder is left out)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["fiqa", "fiqa.*"]), "fiqa.model_weights",
                "fiqa.model_weights.calibrations"])
