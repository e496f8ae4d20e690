"""Train our MagFace model (dlib backbone + MagFace head) → weights/magface.safetensors.

    python scripts/train_magface.py                       # CPU configuration (~10 min, 2 cores)
    python scripts/train_magface.py --config gpu --device cuda   # fine-tune the backbone too
    python scripts/train_magface.py --holdout 50 --no-save       # tune on held-out CelebA people

Data: fiqa.training.data.training_images() — CelebA plus the LFW people outside View 2, so LFW
View 2 stays unseen. Every image is aligned with random jitter and degraded at random (blur,
resolution, noise, JPEG, occlusion, illumination; a quarter left clean).

* cpu: the dlib backbone is frozen; ``--views`` degraded views per image are rendered once and
  their pooled features cached in .fiqa-cache/train/; the head trains on them in seconds an epoch.
* gpu: backbone and head train together on views rendered afresh every step.

With ``--holdout N``, N CelebA identities are left out of training and the script reports how
well the magnitude ranks their views (Spearman ρ against the degradation severity and against
the view's similarity to its identity's other images), beside dlib's own embedding norm.
Writes the epoch log to benchmarks/results/magface_training*.json and a plot to docs/img/.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from fiqa.device import resolve_device
from fiqa.training.data import celeba_holdout, load_faces, training_images
from fiqa.training.magface import MagFaceConfig, cached_pooled_features, finetune, train_head
from fiqa.training.runs import chosen_config, config_parser, run_facts, write_history
from fiqa.weights import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".fiqa-cache" / "train"
CONFIGS = {
    "cpu": MagFaceConfig(),
    "gpu": MagFaceConfig(views=1, epochs=8, batch_size=256, lr=1e-3, backbone_lr=1e-4),
}


def main() -> None:
    parser = config_parser(__doc__, CONFIGS, "magface")
    parser.add_argument("--holdout", type=int, default=0, help="CelebA identities kept out (dev)")
    args = parser.parse_args()
    config = chosen_config(args, CONFIGS)
    device = resolve_device(args.device)
    faces = load_faces(training_images(args.data))
    train = ~np.isin(faces.labels, celeba_holdout(faces, args.holdout, config.seed))
    print(f"{len(faces)} faces of {len(faces.identities)} identities; training on {train.sum()} "
          f"({len(faces.identities) - args.holdout} identities), config {config}", flush=True)
    suffix = f"_{args.config}" + (f"_holdout{args.holdout}" if args.holdout else "")
    if config.backbone_lr > 0:
        net, history = finetune(faces_subset(faces, train), config, device)
    else:
        features, labels, severity = cached_pooled_features(faces, config, device, CACHE)
        in_train = np.tile(train, config.views)
        _, relabelled = np.unique(labels[in_train], return_inverse=True)
        net, history = train_head(features[torch.from_numpy(in_train)], relabelled, config)
        if args.holdout:
            dev = ~in_train
            report = dev_report(net, features[torch.from_numpy(dev)], labels[dev], severity[dev],
                                np.tile(np.arange(len(faces)), config.views)[dev])
            print(json.dumps(report, indent=2))
            history.append({"dev": report})
    write_log(history, config, suffix)
    if not args.no_save:
        save(net, args, config, faces, history)


def faces_subset(faces, keep: np.ndarray):
    """The faces where ``keep`` is true, labels renumbered 0…C−1."""
    index = np.flatnonzero(keep)
    _, labels = np.unique(faces.labels[index], return_inverse=True)
    return dataclasses.replace(faces, images=[faces.images[i] for i in index],
                               landmarks=faces.landmarks[index], labels=labels,
                               paths=[faces.paths[i] for i in index])


def dev_report(net, features: torch.Tensor, labels: np.ndarray, severity: np.ndarray,
               image: np.ndarray) -> dict:
    """Spearman ρ of MagFace's magnitude and of dlib's embedding norm against (a) −severity and
    (b) each view's cosine to the mean dlib embedding of its identity's other images."""
    with torch.inference_mode():
        x = features.float()
        magnitude = net.head(x).norm(dim=1).numpy()
        dlib = net.backbone.fc(x)
    unit = F.normalize(dlib, dim=1).numpy()
    utility = np.empty(len(labels))
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        for r in rows:
            others = rows[image[rows] != image[r]]
            utility[r] = unit[r] @ unit[others].mean(0) if len(others) else np.nan
    known = ~np.isnan(utility)
    scores = {"magface": magnitude, "dlib_norm": dlib.norm(dim=1).numpy()}
    return {name: {"rho_severity": float(spearmanr(s, -severity)[0]),
                   "rho_utility": float(spearmanr(s[known], utility[known])[0])}
            for name, s in scores.items()} | {"views": len(labels)}


def write_log(history: list[dict], config: MagFaceConfig, suffix: str) -> None:
    write_history(ROOT / "benchmarks" / "results" / f"magface_training{suffix}.json", config,
                  history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row for row in history if "epoch" in row]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for axis, key in zip(axes, ("ce", "accuracy", "magnitude"), strict=True):
        axis.plot([r["epoch"] for r in epochs], [r[key] for r in epochs])
        axis.set(xlabel="epoch", title={"ce": "margin cross-entropy",
                                        "accuracy": "training accuracy (no margin)",
                                        "magnitude": "mean ‖f‖"}[key])
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "img" / f"magface_training{suffix}.png", dpi=100)


def save(net, args, config: MagFaceConfig, faces, history: list[dict]) -> None:
    trained = net if config.backbone_lr > 0 else net.head  # a frozen backbone stays dlib's file
    prefix = "" if config.backbone_lr > 0 else "head."
    save_weights(
        args.name, {prefix + key: value.detach() for key, value in trained.state_dict().items()},
        source="trained here: dlib ResNet backbone (weights/dlib_resnet, CC0) + MagFace head",
        licence="CC0 backbone; trained on CelebA and LFW (published for non-commercial research)",
        made_by=" ".join(["python scripts/train_magface.py", *sys.argv[1:]]),
        notes=json.dumps({"data": f"{len(faces)} faces, {len(faces.identities)} identities "
                                  "(CelebA + LFW outside View 2)",
                          "config": dataclasses.asdict(config),
                          **run_facts(history, ROOT)}),
    )
    load_weights(args.name)  # checks the file against the manifest
    print(f"wrote weights/{args.name}.safetensors")


if __name__ == "__main__":
    main()
