"""Train the IDA-SSE heads (fiqa.score_alignment): embedding → discrepancy, per recognizer.

    python scripts/train_ida_sse.py [--recognizers sface,dlib] [--k 100] [--epochs 60]

Data: the ``train`` side of CelebA and FIW (fiqa.training.support_set: half the CelebA identities
and half the FIW families, no LFW person). Each image's target is its IDA-DAO discrepancy against
all the other train-side people (its own identity left out), with ``k`` neighbours; a tenth of the
people are held out of the fit, to report on. CPU: about a minute per recognizer once the embeddings
are cached (the first run embeds the ~8,000 images, ~5 min). Writes
``weights/ida_sse_<recognizer>.safetensors`` with its manifest entry, and the training log to
``benchmarks/results/ida_sse_training.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from fiqa.device import retain_freed_memory
from fiqa.score_alignment import DEFAULT_K, SSE_RECOGNIZERS, discrepancies
from fiqa.training.runs import run_facts
from fiqa.training.support_set import embedded, train_sse
from fiqa.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "made here from the train side of CelebA + FIW (no LFW) and the recognizer's weights"
LICENCE = "derived from the recognizer's weights; data published for non-commercial research"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recognizers", default=",".join(SSE_RECOGNIZERS))
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    args = parser.parse_args()
    retain_freed_memory()  # network passes reuse freed pages, as fiqa's commands do
    recognizers = tuple(args.recognizers.split(","))
    train = embedded(args.data, "train", recognizers, (), args.cache)
    print(f"{len(train)} train-side images of {len(set(train.identities))} people")
    log = {}
    for name in recognizers:
        vectors = train.embeddings[name]
        targets = discrepancies(vectors, vectors, args.k, train.identities, train.identities)
        model, history = train_sse(vectors, targets, train.identities, args.epochs)
        print(name, history[-1])
        made_by = "python scripts/train_ida_sse.py " + shlex.join(sys.argv[1:])
        save_weights(f"ida_sse_{name}", dict(model.state_dict()), source=SOURCE, licence=LICENCE,
                     made_by=made_by.strip(),
                     notes=json.dumps({"k": args.k, "images": len(train),
                                       "people": len(set(train.identities)),
                                       "target_mean": float(np.mean(targets)),
                                       **run_facts(history, ROOT)}))
        log[name] = {"k": args.k, "images": len(train), "history": history}
    out = ROOT / "benchmarks" / "results" / "ida_sse_training.json"
    out.write_text(json.dumps(log, indent=1) + "\n")


if __name__ == "__main__":
    main()
