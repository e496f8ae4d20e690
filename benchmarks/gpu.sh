#!/usr/bin/env bash
# The speed issue's GPU checks in one device call (docs/benchmarks.md), from the repository root:
#   the CUDA path's tests, then end-to-end throughput (fp32, bf16, fp16, with its model-only
#   bound) and the model speeds, on the throughput folder carried from the development machine:
#   run(carry=[".fiqa-cache/throughput"], command="bash benchmarks/gpu.sh", timeout_s=540)
# Results land in benchmarks/results/*_cuda.json and, on the device machine, in $OUT.
set -euo pipefail
pip install --no-deps --no-build-isolation -q -e . || true  # or run from the source tree
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv
if [ -d ../shared/data/lfw ]; then python -m pytest -q -p no:cacheprovider tests/test_data_path.py
else  # no data beside the repository: the same CUDA-against-CPU check on the carried photos
python - <<'PY'
from pathlib import Path
import numpy as np
from fiqa import Scorer
paths = sorted(Path(".fiqa-cache/throughput").glob("*.jpg"))[:32]
names = ["baseline", "magface", "ri", "attention", "sface-norm", "ri-proximity"]
rows = {d: [r for rs in Scorer(names, ["sface"], device=d).run(paths) for r in rs]
        for d in ("cpu", "cuda")}
for name in names:
    a, b = (np.array([r.get(name, np.nan) for r in rows[d]], float) for d in ("cpu", "cuda"))
    print(f"{name}: max |cuda - cpu| / spread = {np.nanmax(abs(a - b)) / max(np.ptp(a[~np.isnan(a)]), 1e-6):.2e}")
PY
fi
python benchmarks/throughput.py --device cuda --threads 8 --workers 8 --repeats 2 \
    --precisions fp32,bf16,fp16
mkdir -p /tmp/gpu_photos && ln -sfn "$PWD/.fiqa-cache/throughput" /tmp/gpu_photos/images
python benchmarks/speed.py --device cuda --lfw /tmp/gpu_photos --recognizers sface,dlib,vit \
    --estimators magface,attention --precisions fp32,bf16,fp16 --batch-sizes 32,128,512
cp benchmarks/results/*cuda*.json "${OUT:-/tmp}/" 2>/dev/null || true
