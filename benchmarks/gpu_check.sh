#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 8): the CUDA tests, then the throughput
# benchmark on the GPU, everything written under $OUT (default benchmarks/results/gpu).
#
# The lent machines have torch, numpy, scikit-learn, rich and pytest but not pydantic (models/spec.py
# needs it). Fetch its wheels here once (Python 3.12 there), git-ignored:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.14.4 pydantic-core annotated-types typing-inspection
# (pydantic-core must be the version that pydantic pins: `unzip -p .whl/pydantic-2*.whl '*/METADATA' | grep core`),
# then run with carry [".whl"]:  bash benchmarks/gpu_check.sh
# Budget: about 9 minutes (tests 1-2, benchmark up to 7); pass a smaller --cnn-images to shorten it.
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, pydantic; print('torch', torch.__version__, 'cuda', torch.cuda.get_device_name(0))" \
    2>&1 | tee "$OUT/env.txt" || exit 1
# the CUDA-only tests and the device paths of the model tests
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/models 2>&1 | tee "$OUT/tests.txt" | tail -5
timeout 420 python3 benchmarks/throughput.py --device cuda --skip-cli --out "$OUT" 2>&1 | tee "$OUT/throughput.log" | tail -60
