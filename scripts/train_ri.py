"""UI centres for the recognizers and the RI regression head → weights/ri_centres, ri_head.

    python scripts/train_ri.py [--recognizers dlib,faceres,magface] [--holdout 0]

1. For every recognizer: the UI centre from 2,000 unrecognisable views of training faces
   (fiqa.training.unrecognisable), and the two angles that anchor ri-proximity's 0–100 quality:
   the median angle of 500 fresh unrecognisable views (→ 0) and the 95th percentile over the
   clean training faces (→ 100).
2. The RI target (fiqa.training.ri) of every degraded training view of the MagFace CPU
   configuration (same views, same cache: .fiqa-cache/train/), from dlib's embeddings, and a
   regression head on dlib's pooled features fitted to it (CPU, about a minute).

Training faces: fiqa.training.data.training_images() (CelebA + LFW people outside View 2). With
``--holdout N``, N CelebA identities are kept out of the head's training and the script reports
Spearman ρ of the predicted RI against the true RI and against the degradation severity there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from fiqa.estimators.ri_proximity import RIProximity
from fiqa.recognizers import recognizer
from fiqa.training.data import DEFAULT_DATA, celeba_holdout, load_faces, training_images
from fiqa.training.magface import MagFaceConfig, cached_pooled_features
from fiqa.training.ri import ri_targets, train_ri_head
from fiqa.training.unrecognisable import ui_centre, unrecognisable_views
from fiqa.weights import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "made here from training faces (CelebA + LFW outside View 2) and the recognizers' weights"
LICENCE = "derived from the recognizers' weights; data published for non-commercial research"


def centres(faces, names: list[str], device: str) -> dict[str, torch.Tensor]:
    """UI centre and anchoring angles of every recognizer in ``names``."""
    tensors = {}
    rng = np.random.default_rng(1)
    probe = rng.choice(len(faces), size=500, replace=False)
    for name in names:
        model = recognizer(name, device)
        centre = ui_centre(model, faces)
        crops, _ = unrecognisable_views(faces, probe, model.crop_spec, rng)
        proximity = RIProximity(device, recognizer=model, centre=centre)
        lost = _angles(proximity, crops)
        good = _angles(proximity, faces.crops(probe, model.crop_spec))
        angles = torch.tensor([np.median(lost), np.percentile(good, 95)])
        print(f"{name}: unrecognisable {np.median(lost):.1f}°, clean median "
              f"{np.median(good):.1f}° (95th pct {angles[1]:.1f}°)", flush=True)
        tensors |= {f"{name}.centre": centre, f"{name}.angles": angles}
    return tensors


def _angles(proximity: RIProximity, crops: torch.Tensor) -> np.ndarray:
    """Degrees to the UI centre of every crop, 64 at a time."""
    return np.concatenate([proximity.score(crops[i:i + 64]) for i in range(0, len(crops), 64)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--recognizers", default="dlib,faceres,magface")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--holdout", type=int, default=0, help="CelebA identities kept out (dev)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faces = load_faces(training_images(args.data))
    made_by = " ".join(["python scripts/train_ri.py", *sys.argv[1:]])
    names = args.recognizers.split(",")
    stored = centres(faces, names if not args.holdout else ["dlib"], args.device)
    if not args.holdout:
        save_weights("ri_centres", stored, source=SOURCE, licence=LICENCE, made_by=made_by,
                     notes=json.dumps({"recognizers": names, "views": 2000, "faces": len(faces)}))
        load_weights("ri_centres")  # checks the file against the manifest
    centre = stored["dlib.centre"]
    config = MagFaceConfig()  # the same degraded views as MagFace's CPU configuration
    features, labels, severity = cached_pooled_features(faces, config, torch.device(args.device),
                                                        ROOT / ".fiqa-cache" / "train")
    images = np.tile(np.arange(len(faces)), config.views)
    dlib = recognizer("dlib", "cpu").model
    with torch.inference_mode():
        embeddings = dlib.fc(features.float())
    targets = ri_targets(embeddings, labels, images, severity == 0, centre)
    held = np.isin(labels, celeba_holdout(faces, args.holdout, args.seed))
    head, history = train_ri_head(features[torch.from_numpy(~held)], targets["ri"][~held],
                                  epochs=args.epochs, seed=args.seed)
    with torch.inference_mode():
        predicted = head(features.float()).numpy()
    report = {"training_views": int((~held).sum()), "history": history}
    if args.holdout:
        known = held & ~np.isnan(targets["ri"])
        report["holdout"] = {
            "views": int(held.sum()),
            "rho_target": float(spearmanr(predicted[known], targets["ri"][known])[0]),
            "rho_severity": float(spearmanr(predicted[held], -severity[held])[0]),
            "rho_severity_proximity": float(spearmanr(targets["proximity"][held],
                                                      -severity[held])[0]),
        }
        print(json.dumps(report["holdout"], indent=2))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    suffix = f"_holdout{args.holdout}" if args.holdout else ""
    (results / f"ri_training{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.holdout:
        low, high = np.percentile(predicted, [1, 99])
        tensors = {f"head.{k}": v for k, v in head.state_dict().items()}
        save_weights("ri_head", tensors | {"range": torch.tensor([low, high])}, source=SOURCE,
                     licence=LICENCE, made_by=made_by,
                     notes=json.dumps({"views": report["training_views"], "epochs": args.epochs,
                                       "final_mse": history[-1]["mse"]}))
        print("wrote weights/ri_centres.safetensors and weights/ri_head.safetensors")


if __name__ == "__main__":
    main()
