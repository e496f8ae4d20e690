"""Train our face ViT by distilling dlib → weights/face_vit.safetensors (recognizer ``vit``).

    OMP_NUM_THREADS=2 python scripts/train_vit.py             # CPU configuration (~45 min, 2 cores)
    python scripts/train_vit.py --config gpu --device cuda    # a wider, deeper student, longer
    python scripts/train_vit.py --epochs 1 --no-save          # smoke run

Data: every CelebA image plus every LFW image of people outside View 2 (labels are not needed, so
people with a single image count too); LFW View 2 stays unseen. The teacher's unit embeddings of
the clean faces are cached in .fiqa-cache/train/; the student sees a fresh jittered, degraded,
flipped view of every face each epoch (fiqa.training.face_vit). The run checkpoints every epoch to
.fiqa-cache/train/ and resumes there when started again with the same configuration.

Writes the epoch log to benchmarks/results/vit_training_<config>.json and a plot to docs/img/.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from fiqa.device import resolve_device
from fiqa.recognizers.face_vit import save_face_vit
from fiqa.training.data import load_faces, training_images
from fiqa.training.face_vit import ViTConfig, distill, teacher_embeddings
from fiqa.training.runs import chosen_config, config_parser, run_facts, write_history
from fiqa.weights import load_weights, record_weights, weights_dir

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".fiqa-cache" / "train"
CONFIGS = {
    "cpu": ViTConfig(),
    "gpu": ViTConfig(dim=384, depth=8, heads=6, mlp_ratio=4.0, epochs=120, batch_size=256,
                     lr=1e-3),
}


def main() -> None:
    args = config_parser(__doc__, CONFIGS, "face_vit").parse_args()
    config = chosen_config(args, CONFIGS)
    device = resolve_device(args.device)
    faces = load_faces(training_images(args.data, min_images=1))
    print(f"{len(faces)} faces of {len(faces.identities)} identities; {config}", flush=True)
    targets = teacher_embeddings(faces, config.teacher, device, CACHE)
    checkpoint = CACHE / f"vit-{args.config}-checkpoint.pt"
    student, history = distill(faces, targets, config, device, checkpoint,
                               log=lambda row: print(json.dumps(row), flush=True))
    write_log(history, config, args.config)
    if not args.no_save:
        save(student, args, config, len(faces), history)


def write_log(history: list[dict], config: ViTConfig, suffix: str) -> None:
    write_history(ROOT / "benchmarks" / "results" / f"vit_training_{suffix}.json", config,
                  history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot([r["epoch"] for r in history], [r["cosine"] for r in history])
    axis.set(xlabel="epoch", ylabel="cosine to the teacher",
             title="training views (fresh degraded views each epoch)")
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "img" / f"vit_training_{suffix}.png", dpi=100)


def save(student, args, config: ViTConfig, faces: int, history: list[dict]) -> None:
    target = save_face_vit(student, weights_dir() / f"{args.name}.safetensors")
    record_weights(
        args.name, target,
        source=f"trained here: face ViT distilled from {config.teacher} (weights/dlib_resnet, CC0)",
        licence="ours; trained on CelebA and LFW (published for non-commercial research)",
        made_by=" ".join(["python scripts/train_vit.py", *sys.argv[1:]]),
        notes=json.dumps({"data": f"{faces} faces (CelebA + LFW outside View 2)",
                          "config": dataclasses.asdict(config),
                          **run_facts(history, ROOT)}),
    )
    load_weights(args.name)  # checks the file against the manifest
    print(f"wrote weights/{args.name}.safetensors")


if __name__ == "__main__":
    main()
