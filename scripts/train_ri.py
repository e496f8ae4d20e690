"""UI centres for the recognizers and the RI regression head → weights/ri_centres, ri_head.

    python scripts/train_ri.py [--recognizers sface,mobilefacenet,dlib,faceres,magface,...]
    python scripts/train_ri.py --centres-only       # the centres again, the head kept
    python scripts/train_ri.py --holdout 300        # develop: report on held-out people
    python scripts/train_ri.py --head-only          # the head again, centres kept
    python scripts/train_ri.py --head-only --without jpeg --name ri_head_without_jpeg
                                                    # a head that never saw JPEG: fiqa.create(
                                                    # "ri", head="ri_head_without_jpeg")

1. For every recognizer: the UI centre from 2,000 unrecognisable views of training faces
   (fiqa.training.unrecognisable), and the two angles that anchor ri-proximity's 0–100 quality:
   the median angle of 500 fresh unrecognisable views (→ 0) and the 95th percentile over the
   clean training faces (→ 100).
2. The RI target (fiqa.training.ri) of every photo view of the MagFace CPU configuration (same
   views, same cache: fiqa.training.photo_views), from SFace's embeddings, with criterion (i)'s
   weight at PROXIMITY_WEIGHT (0: SFace's identity margin alone, so its UI centre plays no part),
   and a regression head on SFace's head inputs fitted to it (CPU, about a minute).

Training faces: fiqa.training.data.training_images(sources=WITHOUT_LFW): CelebA and FIW,
no LFW image. With ``--holdout N``, N identities (the same draw as train_magface.py's) are kept
out of the head's training, and the script reports there Spearman ρ of the predicted RI against
the true RI, the clean-versus-degraded ROC AUC, and the normalised pAUC of the head and of SFace's
norm over the held-out genuine comparisons judged by SFace and FaceRes, on clean views and on a
seeded half degraded (fiqa.training.photo_views.PhotoViews.genuine_paucs, as the face ViT's
held-out report); it needs the views' crops, and FaceRes's embeddings of them (made and cached
in .fiqa-cache/train/ on first use, as the face ViT's). ``--teachers sface,faceres`` makes the
target the mean of the listed recognizers' parts: SFace's RI above, and for any other its
standardised identity margin (fiqa.training.ri.standardised_margins) of its embeddings of the
view crops, cached as the held-out judges'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from fiqa.device import retain_freed_memory
from fiqa.estimators.ri_proximity import RIProximity
from fiqa.recognizers import recognizer
from fiqa.training.data import DEFAULT_DATA, WITHOUT_LFW, load_faces, training_images
from fiqa.training.face_vit import teacher_embeddings
from fiqa.training.magface import MagFaceConfig
from fiqa.training.photo_views import FAMILY_BITS, cached_photo_views
from fiqa.training.ri import ri_targets, standardised_margins, train_ri_head
from fiqa.training.unrecognisable import ui_centre, unrecognisable_views
from fiqa.weights import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".fiqa-cache" / "train"  # other teachers' embeddings of the views, as the ViT's
# The weight of criterion (i) in the target (fiqa.training.ri.ri_targets). On the views of 300
# held-out identities the head ranked by the SFace identity margin with Spearman ρ 0.52 (w = 1),
# 0.70 (w = 0.25) and 0.74 (w = 0): SFace's UI proximity only adds noise (docs/ri.md).
PROXIMITY_WEIGHT = 0.0
RECOGNIZERS = "sface,mobilefacenet,dlib,faceres,magface,mobileface-v3,vit"
SOURCE = "made here from training faces (CelebA + FIW, no LFW) and the recognizers' weights"
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
    parser.add_argument("--recognizers", default=RECOGNIZERS,
                        help="whose UI centres to store (a new one goes last: the angles of the "
                             "earlier ones then come out as before)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--holdout", type=int, default=0, help="identities kept out (dev)")
    parser.add_argument("--head-only", action="store_true",
                        help="keep weights/ri_centres as they are; train the head only")
    parser.add_argument("--centres-only", action="store_true",
                        help="store weights/ri_centres; keep the head as it is")
    parser.add_argument("--name", default="ri_head", help="weights name of the head")
    parser.add_argument("--without", choices=sorted(FAMILY_BITS), default=None,
                        help="leave out of the head's training every view this photo-degradation "
                             "family touched (benchmarks/generalisation.py --held-out)")
    parser.add_argument("--teachers", default="sface",
                        help="comma-separated recognizers whose parts are averaged into the "
                             "target: sface's RI, any other's standardised identity margin")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.centres_only and (args.head_only or args.holdout):
        parser.error("--centres-only stores the centres alone: not with --head-only or --holdout")
    retain_freed_memory()  # network passes reuse freed pages, as fiqa's commands do
    images = training_images(args.data, sources=WITHOUT_LFW)
    made_by = " ".join(["python scripts/train_ri.py", *sys.argv[1:]])
    names = args.recognizers.split(",")
    if args.holdout or args.head_only:
        centre = torch.as_tensor(load_weights("ri_centres")["sface.centre"])
    else:
        stored = centres(load_faces(images), names, args.device)
        save_weights("ri_centres", stored, source=SOURCE, licence=LICENCE, made_by=made_by,
                     notes=json.dumps({"recognizers": names, "views": 2000}))
        load_weights("ri_centres")  # checks the file against the manifest
        centre = stored["sface.centre"]
        if args.centres_only:
            return
    config = MagFaceConfig()  # the same photo views as MagFace's CPU configuration
    teachers = args.teachers.split(",")
    # crops for the other teachers and the held-out judges (FaceRes embeds them)
    views = cached_photo_views(images, config.views, config.seed, cache=CACHE.parent,
                               crops=teachers != ["sface"] or bool(args.holdout))
    features = views.features
    targets = ri_targets(views.embeddings, views.labels, views.image, views.view == 0, centre,
                         PROXIMITY_WEIGHT)
    if teachers != ["sface"]:  # the listed teachers' parts averaged
        targets["ri"] = np.mean([
            targets["ri"] if name == "sface" else
            standardised_margins(teacher_embeddings(views, name, CACHE, args.device), views)
            for name in teachers], axis=0)
    held = views.held_out(args.holdout, args.seed)  # the draw of train_magface.py's --holdout
    train = ~held if args.without is None else ~held & ~views.has_family(args.without)
    head, history = train_ri_head(features[torch.from_numpy(train)], targets["ri"][train],
                                  epochs=args.epochs, seed=args.seed)
    with torch.inference_mode():
        predicted = head(features.float()).numpy()
    report = {"training_views": int(train.sum()), "without": args.without,
              "teachers": teachers, "history": history}
    if args.holdout:
        known = held & ~np.isnan(targets["ri"])
        degraded = views.families[held] > 0
        index = np.flatnonzero(held)
        judges = {name: F.normalize(teacher_embeddings(views, name, CACHE, args.device)[index],
                                    dim=1) for name in ("sface", "faceres")}
        norm = views.embeddings[held].norm(dim=1).numpy()
        report["holdout"] = {
            "views": int(held.sum()),
            "rho_target": float(spearmanr(predicted[known], targets["ri"][known])[0]),
            "auc_clean": float(roc_auc_score(~degraded, predicted[held])),
            "auc_clean_sface_norm": float(roc_auc_score(~degraded, norm)),
            "pauc": views.genuine_paucs(index, predicted[held], judges),
            "pauc_sface_norm": views.genuine_paucs(index, norm, judges),
        }
        print(json.dumps(report["holdout"], indent=2))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    suffix = (f"_holdout{args.holdout}" if args.holdout else "") + (
        f"_without_{args.without}" if args.without else "") + (
        f"_{'_'.join(teachers)}" if teachers != ["sface"] else "")
    (results / f"ri_training{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.holdout:
        low, high = np.percentile(predicted, [1, 99])
        tensors = {f"head.{k}": v for k, v in head.state_dict().items()}
        save_weights(args.name, tensors | {"range": torch.tensor([low, high])}, source=SOURCE,
                     licence=LICENCE, made_by=made_by,
                     notes=json.dumps({"views": report["training_views"], "epochs": args.epochs,
                                       "target": "mean over the teachers of SFace's RI "
                                                 f"(proximity weight {PROXIMITY_WEIGHT}) and the "
                                                 "others' standardised identity margins, photo "
                                                 "views",
                                       "teachers": teachers,
                                       "without": args.without,
                                       "final_mse": history[-1]["mse"]}))
        print(f"wrote weights/{args.name}.safetensors")


if __name__ == "__main__":
    main()
