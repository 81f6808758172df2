#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 8): the GPU tests, the throughput benchmark
# on the GPU (compile modes included), and a full `curate score` job of 16 members x 20 epochs on
# 50,000 CIFAR-shaped images (target: <= 90 s), everything written under $OUT.
#
# The lent machines have torch, numpy, scikit-learn, scipy, pyarrow, pillow, rich, typer, httpx and
# pytest, but not pydantic, duckdb or fastapi. Fetch their wheels here once (Python 3.12 there,
# ~32 MB; the carry limit is 64 MiB), git-ignored:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
#     --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
# then run it with carry [".whl"] and a timeout of 570 s:  bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "no wheels in .whl: see the header of this script"; exit 1; }
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, duckdb, fastapi; print('torch', torch.__version__, torch.cuda.get_device_name(0))" \
    2>&1 | tee "$OUT/env.txt" || exit 1
# 1. the tests that need CUDA (bf16 autocast, device paths)
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/tests.txt" | tail -3
# 2. training and record-pass speed on the GPU, eager and compiled
timeout 300 python3 benchmarks/throughput.py --device cuda --skip-cli --compile default,reduce-overhead \
    --out "$OUT" > "$OUT/throughput.log" 2>&1; tail -40 "$OUT/throughput.md"
# 3. one whole job, upload to stored scores
python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.savez("/tmp/cifar_synth.npz", X=rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8),
         y=rng.integers(0, 10, 50_000))
PY
start=$EPOCHREALTIME
timeout 150 python3 -m service score /tmp/cifar_synth.npz --members 16 --epochs 20 --data-dir /tmp/curate-gpu \
    > "$OUT/score.log" 2>&1
rc=$?
echo "curate score 50k CIFAR-shaped, 16 x 20: rc $rc in $(python3 -c "print(round($EPOCHREALTIME - $start, 1))") s" \
    | tee "$OUT/score_time.txt"
