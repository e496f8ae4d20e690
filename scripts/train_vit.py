"""Train our hybrid face ViT, distilling SFace → weights/face_vit.safetensors (recognizer ``vit``).

    OMP_NUM_THREADS=2 python scripts/train_vit.py             # CPU configuration (2 cores)
    python scripts/train_vit.py --config gpu --device cuda    # a deeper student on a shorter stem
    python scripts/train_vit.py --epochs 1 --no-save          # smoke run: prints, writes nothing
    python scripts/train_vit.py --held-out-only               # held-out figures of the weights

Data: the photo views of every CelebA and FIW photo (fiqa.training.photo_views, the same views
as the magface and ri heads: clean, and twice degraded as a whole photograph), **no LFW image**,
so LFW View 2 is a test on people, photos and cameras the student never saw. 300 identities stay
out of training; the last epoch reports on them (fiqa.training.face_vit.held_out_report): the
cosine to the teacher and the attention score's AUC and pAUC, development figures on people and
photos no LFW figure depends on (choose settings by these, not by LFW).

CPU configuration: SFace's first 23 convolutions frozen (their 512×14×14 maps computed once and
cached in .fiqa-cache/train/, about 9 GB, resumable), a 1×1 projection to 128, 2 transformer
blocks, the flattened tokens → 128-d (--flips: half of each batch mirrored, the mirrored maps
cached too, another 9 GB). GPU configuration: 13 frozen layers, width 384, 6 blocks,
the stem run on the device every step, flips. Both checkpoint every epoch to .fiqa-cache/train/
and resume there when started again with the same configuration.

The attention term ties the last block's mean logit to the teachers' recognisability of each
view (--teachers, default sface,faceres: each one's cosine between the view and the centre of
its person's other photos, standardised and averaged; docs/attention.md compares it with sface
alone; "student" among them adds the student's own, from its embeddings of the views before
every epoch but the first). FaceRes embeds the 112-px training crops resized to its 224 px once,
cached in .fiqa-cache/train/ (5 min on 2 cores with bf16 units, about 25 in fp32 on an AVX2 CPU).

Writes the epoch log to benchmarks/results/vit_training_<config>.json and a plot to docs/img/.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from fiqa.device import resolve_device, retain_freed_memory
from fiqa.recognizers.face_vit import load_face_vit, save_face_vit
from fiqa.training.data import WITHOUT_LFW, training_images
from fiqa.training.face_vit import ViTConfig, distill, evaluate_held_out
from fiqa.training.photo_views import cached_photo_views
from fiqa.training.runs import chosen_config, config_parser, run_facts, write_history
from fiqa.weights import load_weights, record_weights, weights_dir

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".fiqa-cache" / "train"
CONFIGS = {
    "cpu": ViTConfig(),
    "gpu": ViTConfig(stem_layers=13, dim=384, depth=6, heads=6, mlp_ratio=4.0, epochs=30,
                     batch_size=256, precompute=False, flips=True),
}


def main() -> None:
    parser = config_parser(__doc__, CONFIGS, "face_vit")
    parser.add_argument("--held-out-only", action="store_true",
                        help="print the held-out figures of weights/<name> and exit")
    args = parser.parse_args()
    retain_freed_memory()  # network passes reuse freed pages, as fiqa's commands do
    config = chosen_config(args, CONFIGS)
    device = resolve_device(args.device)
    images = training_images(args.data, sources=WITHOUT_LFW)
    views = cached_photo_views(images, views=2, seed=0, cache=ROOT / ".fiqa-cache", crops=True)
    print(f"{len(views)} views of {len(images)} photos, {len(views.identities)} identities; "
          f"{config}", flush=True)
    if args.held_out_only:
        student = load_face_vit(weights_dir() / f"{args.name}.safetensors")
        report = evaluate_held_out(student, views, config, CACHE, device)
        print(json.dumps(report, indent=1))
        return
    checkpoint = CACHE / f"vit-{args.config}-checkpoint.pt"
    student, history = distill(views, config, device, checkpoint, CACHE,
                               log=lambda row: print(json.dumps(row), flush=True))
    if not args.no_save:  # a trial run leaves the shipped weights and their log alone
        write_log(history, config, args.config)
        save(student, args, config, len(views), history)


def write_log(history: list[dict], config: ViTConfig, suffix: str) -> None:
    write_history(ROOT / "benchmarks" / "results" / f"vit_training_{suffix}.json", config,
                  history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot([r["epoch"] for r in history], [r["cosine"] for r in history], marker="o")
    axis.set(xlabel="epoch", ylabel="cosine to the teacher",
             title="training views (clean and photo-degraded)")
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "img" / f"vit_training_{suffix}.png", dpi=100)


def save(student, args, config: ViTConfig, views: int, history: list[dict]) -> None:
    target = save_face_vit(student, weights_dir() / f"{args.name}.safetensors")
    record_weights(
        args.name, target,
        source="trained here: hybrid face ViT on SFace's first layers (weights/sface, "
               "Apache-2.0), distilled from SFace",
        licence="ours; stem from SFace (Apache-2.0); trained on CelebA and FIW "
                "(published for non-commercial research)",
        made_by=" ".join(["python scripts/train_vit.py", *sys.argv[1:]]),
        notes=json.dumps({"data": f"{views} photo views (CelebA + FIW, no LFW)",
                          "config": dataclasses.asdict(config),
                          **run_facts(history, ROOT)}),
    )
    load_weights(args.name)  # checks the file against the manifest
    print(f"wrote weights/{args.name}.safetensors")


if __name__ == "__main__":
    main()
