"""What the training scripts share: options that override a run's configuration, and the facts a
weights manifest entry records about the run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

from .data import DEFAULT_DATA


def config_parser(doc: str, configs: dict[str, Any], weights_name: str) -> argparse.ArgumentParser:
    """A parser with --config (a key of ``configs``: dataclass instances of one type), --data,
    --device, --name, --no-save and one --<field> per dataclass field; ``doc`` (the script's
    docstring) gives the description (first line) and the epilog (the rest)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=doc.split("\n", 2)[2])
    parser.add_argument("--config", choices=sorted(configs), default=next(iter(configs)))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default=weights_name, help="weights name in weights/")
    parser.add_argument("--no-save", action="store_true", help="do not write weights")
    for field in dataclasses.fields(next(iter(configs.values()))):  # --epochs, --lr, ...
        option = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):  # --flag / --no-flag
            parser.add_argument(option, action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(option, type=type(field.default))
    return parser


def chosen_config(args: argparse.Namespace, configs: dict[str, Any]) -> Any:
    """``configs[args.config]`` with every field given on the command line replaced."""
    config = configs[args.config]
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
                 if getattr(args, f.name) is not None}
    return dataclasses.replace(config, **overrides)


def write_history(path: Path, config: Any, history: list[dict]) -> None:
    """The run's configuration and epoch log as JSON at ``path`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = {"config": dataclasses.asdict(config), "history": history}
    path.write_text(json.dumps(log, indent=1) + "\n")


def run_facts(history: list[dict], root: Path) -> dict:
    """The repository's commit and the last epoch's numbers (rounded), for a manifest entry."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=root).stdout.strip()
    last = {k: round(v, 4) for k, v in history[-1].items() if isinstance(v, float)}
    return {"commit": commit, "final_epoch": last}
