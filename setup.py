"""Packages: every ``fiqa.*`` found in the tree, plus the repository's ``weights/`` installed as
``fiqa.model_weights`` (its data files and folder mapping are declared in pyproject.toml)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["fiqa", "fiqa.*"]), "fiqa.model_weights"])
