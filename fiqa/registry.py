"""A name → class registry that discovers the modules of its package and entry points."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes with a ``name`` attribute, registered by decorator.

    kind: what is registered ("estimator"), used in messages. package: the package whose modules
    are all imported on first lookup. group: the entry point group other packages use to add theirs.
    """

    def __init__(self, kind: str, package: str, group: str) -> None:
        self.kind, self.package, self.group = kind, package, group
        self._classes: dict[str, T] = {}
        self._discovered = False

    def register(self, cls: T) -> T:
        """Class decorator: make ``cls`` available under ``cls.name``."""
        if ":" in cls.name:
            raise ValueError(f"{self.kind} name {cls.name!r}: ':' is kept for variants "
                             "(name:value)")
        if self._classes.get(cls.name, cls) is not cls:
            raise ValueError(f"an {self.kind} named {cls.name!r} is already registered")
        self._classes[cls.name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class called ``name`` (ValueError listing the known names otherwise)."""
        self._discover()
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        return self._classes[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self._classes)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")
        for entry in entry_points(group=self.group):
            entry.load()
