"""ONNX files of fiqa's torch networks: ``fiqa export NAME -o model.onnx``.

Every recognizer, and every estimator that is one torch network on crops alone
(:meth:`~fiqa.estimators.QualityEstimator.network_score`), is traced from aligned crops to its
output, preprocessing included:

* input ``crops``: N×3×S×S uint8 RGB, aligned to the model's crop spec (N may vary);
* output ``score`` (N float32 raw scores, higher = better) for an estimator, ``embedding``
  (N×D float32, unnormalised) for a recognizer.

The crop spec (size, five-point template, padding, channel order, normalisation) and the model's
name, kind, score range, weights and fiqa version are written into the file's metadata
(:func:`metadata`), so a deployment aligns faces the way the model was trained on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .backbones import Backbone, shared_backbone
from .estimators import QualityEstimator, create, estimator_class, list_estimators
from .recognizers import Recognizer, list_recognizers, recognizer

OPSET = 17
KINDS = ("estimator", "recognizer")


def exportable() -> list[tuple[str, str]]:
    """(kind, name) of every built-in model ``fiqa export`` can write."""
    estimators = [("estimator", name) for name in list_estimators()
                  if _is_network(estimator_class(name))]
    return estimators + [("recognizer", name) for name in list_recognizers()]


def _is_network(cls: type[QualityEstimator]) -> bool:
    """Whether the estimator class implements :meth:`QualityEstimator.network_score`."""
    return cls.network_score is not QualityEstimator.network_score


def load(name: str, kind: str | None = None) -> QualityEstimator | Recognizer:
    """The model called ``name`` on the CPU; ``kind`` ("estimator" or "recognizer") is needed only
    for a name that is both (``magface``: its quality score, or its embedding)."""
    base = name.partition(":")[0]  # an estimator's variant (ri-proximity:sface) exports too
    kinds = [k for k, names in (("estimator", list_estimators()),
                                ("recognizer", list_recognizers())) if base in names]
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be estimator or recognizer, got {kind!r}")
        if kind not in kinds:
            raise ValueError(f"no {kind} called {name!r}")
        kinds = [kind]
    if not kinds:
        raise ValueError(f"no estimator or recognizer called {name!r}: see `fiqa list`")
    if len(kinds) > 1:
        raise ValueError(f"{name!r} is an estimator and a recognizer: pass --kind estimator "
                         "(its score) or --kind recognizer (its embedding)")
    if kinds[0] == "recognizer":
        if base != name:
            raise ValueError(f"{name!r}: a recognizer has no variants")
        return recognizer(name, "cpu")
    if not _is_network(estimator_class(name)):
        raise ValueError(f"{name} is not a torch network on crops alone (it reads detection "
                         "metadata or fits trees): it has no ONNX export")
    return create(name, "cpu")


class _Traced(nn.Module):
    """``forward(crops)``: the model's score or embedding (a module the tracer can call)."""

    def __init__(self, compute: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.compute = compute

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.compute(crops).float()


def export(model: QualityEstimator | Recognizer, output: str | Path,
           example: torch.Tensor | None = None) -> Path:
    """Write ``model`` (on the CPU) as ONNX to ``output``, traced on ``example`` crops (default:
    two random ones), with :func:`metadata`; returns the path."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("fiqa export needs the onnx package: pip install 'fiqa[onnx]'") from error
    spec = model.crop_spec
    if example is None:
        example = torch.randint(0, 256, (2, 3, spec.size, spec.size), dtype=torch.uint8,
                                generator=torch.Generator().manual_seed(0))
    is_recognizer = isinstance(model, Recognizer)
    compute = model.embed if is_recognizer else model.network_score
    output_name = "embedding" if is_recognizer else "score"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with _frozen(_networks(model)), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it keeps constant
        torch.onnx.export(_Traced(compute), (example,), str(output), dynamo=False,
                          input_names=["crops"], output_names=[output_name], opset_version=OPSET,
                          dynamic_axes={"crops": {0: "faces"}, output_name: {0: "faces"}})
    graph = onnx.load(str(output))
    for key, value in metadata(model).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(output))
    return output


def metadata(model: QualityEstimator | Recognizer) -> dict[str, str]:
    """The ONNX metadata fiqa writes: ``fiqa.crop_spec`` (JSON of :class:`~fiqa.crop.CropSpec`;
    ``template`` in a ``template_size`` crop, ``mean``/``std`` on 0–255 values), ``fiqa.name``,
    ``fiqa.kind``, ``fiqa.output``, ``fiqa.score_range`` (estimators), ``fiqa.dim``
    (recognizers), ``fiqa.weights`` (name → sha256) and ``fiqa.version``."""
    is_recognizer = isinstance(model, Recognizer)
    facts = {
        "fiqa.name": model.name,
        "fiqa.kind": "recognizer" if is_recognizer else "estimator",
        "fiqa.output": "embedding: N×D float32, unnormalised" if is_recognizer
        else "score: N float32 raw scores, higher = better",
        "fiqa.input": "crops: N×3×S×S uint8 RGB aligned to fiqa.crop_spec",
        "fiqa.crop_spec": json.dumps(dataclasses.asdict(model.crop_spec)),
        "fiqa.weights": json.dumps({e["file"]: e["sha256"] for e in _provenance(model)}),
        "fiqa.version": __version__,
    }
    if is_recognizer:
        facts["fiqa.dim"] = str(model.dim)
    else:
        facts["fiqa.score_range"] = json.dumps(list(model.score_range))
    return facts


def _provenance(model: QualityEstimator | Recognizer) -> list[dict]:
    """Manifest entries of every weights file in the export: the model's own and, for an
    estimator on a recognizer (``ri-proximity`` on dlib), the recognizer's."""
    entries = list(model.provenance())
    inner = getattr(model, "recognizer", None)
    if isinstance(inner, Recognizer):
        entries += inner.provenance()
    return list({entry["file"]: entry for entry in entries}.values())


def _networks(model: object) -> Iterator[nn.Module]:
    """The torch modules ``model`` computes with: its own, its recognizer's, and the shared
    backbones they read, upstream ones included."""
    seen: set[int] = set()
    pending = [model]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, nn.Module):
            yield item
            continue
        if isinstance(item, QualityEstimator | Recognizer | Backbone):
            pending += [value for value in vars(item).values()
                        if isinstance(value, nn.Module | QualityEstimator | Recognizer)]
        if isinstance(item, QualityEstimator | Recognizer) and item.backbone is not None:
            pending.append(item.shared)
        if isinstance(item, Backbone):
            pending.append(item.net)
            if item.upstream is not None:
                pending.append(shared_backbone(item.upstream, item.device, item.precision))


@contextlib.contextmanager
def _frozen(modules: Iterator[nn.Module]) -> Iterator[None]:
    """Parameters without gradients for the duration (the tracer keeps them as constants).
    Parameters made in inference mode stay so: they can never take a gradient."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            if not parameter.is_inference():
                parameter.requires_grad_(True)
