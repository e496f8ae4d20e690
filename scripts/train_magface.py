"""Train our MagFace model (SFace backbone + MagFace head) → weights/magface.safetensors.

    python scripts/train_magface.py                    # CPU configuration (~2 min once views exist)
    python scripts/train_magface.py --config gpu --device cuda   # fine-tune the backbone too
    python scripts/train_magface.py --holdout 300 --no-save      # develop on held-out people
    python scripts/train_magface.py --lodo             # leave-one-domain-out
    python scripts/train_magface.py --holdout 300 --no-save --pairwise 0.3
                                    # a trial: degraded views' magnitudes below their clean view's

Data: fiqa.training.data.training_images(sources=--sources), by default CelebA and FIW and *no
LFW image*, so LFW (View 2 and all) stays unseen. Every photo gives a clean view and ``--views``
views degraded as whole photographs (fiqa.training.photo_views: the training recipe, then
detection and alignment again); FIW crops are degraded as they are.

* cpu: the SFace backbone is frozen; the views' SFace head inputs are rendered once (about
  17 min on two cores for CelebA + FIW) and cached in .fiqa-cache/train/; the head trains on them
  in seconds an epoch.
* gpu: backbone and head train together on views rendered afresh every step.

``--holdout N`` keeps N identities (a seeded draw over all sources) out of training and reports
how well the magnitude ranks their views: Spearman ρ against the view's identity margin under
SFace (cosine to its own identity's other clean images − the best other identity, the quantity a
verification error depends on) and the ROC AUC separating clean from degraded views, beside
SFace's own embedding norm. ``--lodo`` trains a head with each domain left out (the datasets,
and photo-degradation families) and reports it on the views of the left-out domain of held-out
people, beside SFace's norm: benchmarks/results/magface_lodo.json. (Its earlier version, at
commit 70a7d82, also trained MFR heads; docs/magface.md.)
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from fiqa.device import resolve_device, retain_freed_memory
from fiqa.training.data import SOURCES, WITHOUT_LFW, training_images
from fiqa.training.magface import MagFaceConfig, finetune, train_on_views
from fiqa.training.photo_views import PhotoViews, cached_photo_views
from fiqa.training.ri import identity_margins
from fiqa.training.runs import chosen_config, config_parser, run_facts, write_history
from fiqa.weights import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {
    "cpu": MagFaceConfig(),
    "gpu": MagFaceConfig(epochs=8, batch_size=256, lr=1e-3, backbone_lr=1e-4),
}
LODO_DOMAINS = ("celeba", "fiw", "downscale", "defocus", "noise", "jpeg", "occlusion")


def main() -> None:
    parser = config_parser(__doc__, CONFIGS, "magface")
    parser.add_argument("--sources", default=",".join(WITHOUT_LFW), help="training datasets")
    parser.add_argument("--holdout", type=int, default=0, help="identities kept out (dev)")
    parser.add_argument("--lodo", action="store_true", help="leave-one-domain-out comparison")
    args = parser.parse_args()
    retain_freed_memory()  # network passes reuse freed pages, as fiqa's commands do
    config = chosen_config(args, CONFIGS)
    images = training_images(args.data, sources=tuple(args.sources.split(",")))
    if config.backbone_lr > 0:
        if args.holdout or args.lodo:
            parser.error("--holdout and --lodo train heads on cached views: use --config cpu")
        net, history = finetune(images, config, resolve_device(args.device))
        write_history(RESULTS / f"magface_training_{args.config}.json", config, history)
        if not args.no_save:
            save(net, args, config, f"{len(images)} photos", history)
        return
    views = cached_photo_views(images, config.views, config.seed)
    print(f"{len(views)} views of {len(images)} photos, {len(views.identities)} identities; "
          f"{views.lost.sum()} degraded views lost their face", flush=True)
    if args.lodo:
        lodo(views, config)
        return
    train = ~views.held_out(args.holdout, config.seed)
    net, history = train_on_views(views, train, config, log=_print_row)
    if args.holdout:
        report = dev_report(net, views, ~train)
        print(json.dumps(report, indent=2))
        history.append({"dev": report})
    suffix = (f"_{args.config}" + (f"_holdout{args.holdout}" if args.holdout else "")
              + (f"_pairwise{config.pairwise:g}" if config.pairwise else ""))
    write_history(RESULTS / f"magface_training{suffix}.json", config, history)
    if not args.no_save:
        save(net, args, config, f"{int(train.sum())} views of {len(views.identities)} "
                                f"identities ({args.sources})", history)


def domains(views: PhotoViews) -> dict[str, np.ndarray]:
    """The domains of :data:`LODO_DOMAINS`: each dataset, and the views a family touched."""
    sources = views.sources
    return {name: sources == name if name in SOURCES else views.has_family(name)
            for name in LODO_DOMAINS}


def scores(net, views: PhotoViews, rows: np.ndarray) -> dict[str, np.ndarray]:
    """MagFace's magnitude and SFace's embedding norm on ``rows``."""
    features = views.features[torch.from_numpy(rows)].float()
    with torch.inference_mode():
        magnitude = net.head(features).norm(dim=1).numpy()
    return {"magface": magnitude, "sface_norm": views.embeddings[rows].norm(dim=1).numpy()}


def dev_report(net, views: PhotoViews, rows: np.ndarray) -> dict:
    """Spearman ρ against the SFace identity margin, clean-vs-degraded AUC, and the normalised
    pAUC judged by SFace on the clean views and on a seeded half degraded
    (:meth:`PhotoViews.genuine_paucs`), on ``rows``."""
    margin = identity_margins(views.embeddings[rows], views.labels[rows], views.image[rows],
                              views.view[rows] == 0)
    known, degraded = ~np.isnan(margin), views.families[rows] > 0
    unit = torch.nn.functional.normalize(views.embeddings[rows].float(), dim=1)
    report = {"views": int(rows.sum())}
    for name, score in scores(net, views, rows).items():
        report[name] = {"rho_margin": float(spearmanr(score[known], margin[known])[0]),
                        "auc_clean": float(roc_auc_score(~degraded, score))
                        if 0 < degraded.sum() < len(degraded) else None,
                        **views.genuine_paucs(np.flatnonzero(rows), score, {"sface": unit})}
    return report


def lodo(views: PhotoViews, config: MagFaceConfig) -> None:
    """A head with each domain of :data:`LODO_DOMAINS` left out, judged on that domain's views of
    300 held-out identities (their clean views make the prototypes), beside SFace's norm."""
    held = views.held_out(300, config.seed)
    quick = dataclasses.replace(config, epochs=15)
    report = {"config": dataclasses.asdict(quick), "domains": {}}
    for domain, mask in domains(views).items():
        net, _ = train_on_views(views, ~held & ~mask, quick, log=_print_row)
        report["domains"][domain] = dev_report(net, views, held & (mask | (views.view == 0)))
        print(domain, json.dumps(report["domains"][domain]), flush=True)
        (RESULTS / "magface_lodo.json").write_text(json.dumps(report, indent=1) + "\n")


def _print_row(row: dict) -> None:
    print(json.dumps(row), flush=True)


def save(net, args, config: MagFaceConfig, data: str, history: list[dict]) -> None:
    trained = net if config.backbone_lr > 0 else net.head  # a frozen backbone stays SFace's file
    prefix = "" if config.backbone_lr > 0 else "head."
    save_weights(
        args.name, {prefix + key: value.detach() for key, value in trained.state_dict().items()},
        source="trained here: SFace backbone (weights/sface, Apache-2.0) + MagFace head",
        licence="Apache-2.0 backbone; head trained on CelebA and FIW (non-commercial research)",
        made_by=" ".join(["python scripts/train_magface.py", *sys.argv[1:]]),
        notes=json.dumps({"data": data, "config": dataclasses.asdict(config),
                          **run_facts(history, ROOT)}),
    )
    load_weights(args.name)  # checks the file against the manifest
    print(f"wrote weights/{args.name}.safetensors")


if __name__ == "__main__":
    main()
