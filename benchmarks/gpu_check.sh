#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 8), most important first, each step under its
# own time limit, everything written under $OUT (at most 8 files come back):
#   1. throughput.py on the GPU: the reference CNN (~2M parameters a member) at N = 16, batch 512,
#      dropout none / Jumpout, eager and compiled (section 4b), the record pass, a kernel profile;
#      plus the batch-128 CNN rows with augmentation (section 4). MLP sections when MLP=1.
#   2. a full `curate score` job: 16 members x 20 epochs on 50,000 CIFAR-shaped images (target:
#      <= 90 s from upload to stored scores), with the job's events (scored / explained times).
#      SCORE_SET="compile=default" adds `--set compile=default`; SCORE_SET=auto picks the compile mode
#      whose job-sized rows in section 4b give the shortest 20 epochs, compilation included.
#   3. the gpu-marked tests (bf16 autocast, device paths, each compile mode, attributions on CUDA).
# Knobs: MLP=1 adds the MLP sections (with COMPILE="default,reduce-overhead" their compile rows and the
# job-sized CNN under CUDA graphs), CNN=0 drops the CNN sections (CNN_BASIC=0 only section 4), TESTS=0
# the tests; THROUGHPUT_S, SCORE_S, TESTS_S are the step limits. Results of past runs and what to try
# next: benchmarks/results/gpu/README.md.
#
# The lent machines have torch, numpy, scikit-learn, scipy, pyarrow, pillow, rich, typer, httpx and
# pytest, but not pydantic, duckdb or fastapi (nor fastapi's opentelemetry-api). Fetch their wheels here once (Python 3.12 there,
# ~32 MB; the carry limit is 64 MiB), git-ignored:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
#     --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
# then run it with carry [".whl"]:  bash benchmarks/gpu_check.sh   (at most ~8.5 minutes: timeout_s 540)
# Rehearse on a CPU (small sizes, no wheels): DEVICE=cpu SMALL=1 WHEELS=0 PY=.venv/bin/python bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
MLP=${MLP:-0}
CNN=${CNN:-1}
TESTS=${TESTS:-1}
SCORE_SET=${SCORE_SET:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
if [ -d .whl ] && [ "${WHEELS:-1}" = 1 ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "could not install the wheels in .whl: see the header of this script"; exit 1; }
fi
{ nvidia-smi 2>&1 | head -20; nproc; $PY -c "import torch, duckdb, fastapi, sys; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'duckdb', duckdb.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() \
else 'no CUDA')"; } > "$OUT/env.txt" 2>&1 || { cat "$OUT/env.txt"; exit 1; }
tail -1 "$OUT/env.txt"

# 1. throughput on the device
if [ "$SMALL" = 1 ]; then size=(--cnn-images 512 --cnn-steps 1 --cnn-batch 16 --record-images 128 --members 2 \
                                 --mlp-steps 3 --cnn-members 2); else size=(); fi
skip=(--skip-mlp); [ "$MLP" = 1 ] && skip=()
[ "${CNN_BASIC:-1}" = 1 ] || skip+=(--skip-cnn-basic)
[ "$CNN" = 1 ] || skip+=(--skip-cnn)
timeout "${THROUGHPUT_S:-280}" $PY benchmarks/throughput.py --device "$DEVICE" --threads 1 --skip-cli --skip-epochs --cnn-members 16 --variants \
    --compile "${COMPILE:-default}" "${skip[@]}" "${size[@]}" --out "$OUT" > "$OUT/throughput.log" 2>&1
echo "throughput rc $?"
grep -E "^(MET|MISSED)" "$OUT/throughput.log"

# 2. one whole job, upload to stored scores
n=50000; [ "$SMALL" = 1 ] && n=600
$PY - "$n" <<'PY'
import sys
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
np.savez("/tmp/cifar_synth.npz", X=rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), y=rng.integers(0, 10, n))
PY
rm -rf /tmp/curate-gpu
if [ "$SCORE_SET" = auto ]; then  # the compile mode whose job-sized steps (section 4b) save most, compile included
    SCORE_SET=$($PY - "$OUT/throughput.json" <<'PY'
import json
import sys
try:
    rows = json.load(open(sys.argv[1]))["cnn_variants"]["rows"]
except (OSError, KeyError):
    sys.exit("no section 4b rows to choose from: the job runs with the defaults")
job = [r for r in rows if r["width"] == 32 and r["dropout"] == "jumpout" and r["channels_last"]]
steps = 20 * 196  # the job's training steps: 20 epochs of 50,000 images at batch 256
cost = {r["compile"]: steps * r["median_step_ms"] / 1e3 + (r["first_step_s"] if r["compile"] != "off" else 0.0)
        for r in job if "fell back" not in r["compile"]}
print("compile=" + min(cost, key=cost.get) if cost else "")
PY
) || SCORE_SET=""
    echo "score job with ${SCORE_SET:-the defaults}"
fi
extra=(); [ -n "$SCORE_SET" ] && extra=(--set "$SCORE_SET")
epochs=20; members=16; [ "$SMALL" = 1 ] && epochs=2 && members=2
start=$EPOCHREALTIME
timeout "${SCORE_S:-120}" $PY -m service score /tmp/cifar_synth.npz --members $members --epochs $epochs --device "$DEVICE" \
    --data-dir /tmp/curate-gpu "${extra[@]}" > "$OUT/score.log" 2>&1
rc=$?
end=$EPOCHREALTIME
$PY - "$rc" "$start" "$end" "$n" "$members x $epochs" "$SCORE_SET" <<'PY' 2>&1 | tee -a "$OUT/score.log"
import json
import sys
import duckdb
rc, start, end, n, epochs, extra = sys.argv[1:]
print(f"curate score {n} CIFAR-shaped images, {epochs} {extra}: rc {rc} in {float(end) - float(start):.1f} s")
con = duckdb.connect("/tmp/curate-gpu/curate.duckdb", read_only=True)
events = con.execute("SELECT created_at, kind, message FROM events ORDER BY created_at").fetchall()
for at, kind, message in events:
    print(f"  +{(at - events[0][0]).total_seconds():7.1f} s  {kind:10s} {message}")
if events:
    t0 = events[0][0]
    for model, n_commits, first, last, secs in con.execute(
            "SELECT model, count(*), min(committed_at), max(committed_at), sum(seconds) FROM epoch_metrics "
            "GROUP BY model ORDER BY model").fetchall():
        print(f"  {model}: {n_commits} epochs committed, first +{(first - t0).total_seconds():.1f} s, "
              f"last +{(last - t0).total_seconds():.1f} s, worker seconds summed {secs:.1f}")
    summary = json.loads(con.execute("SELECT summary FROM jobs").fetchone()[0] or "{}")
    print("  attributions:", summary.get("attributions"))
PY

# 3. the tests that need CUDA
if [ "$TESTS" = 1 ]; then
    timeout "${TESTS_S:-80}" $PY -m pytest -q -p no:cacheprovider -m gpu tests/models > "$OUT/tests.txt" 2>&1
    tail -3 "$OUT/tests.txt"
fi
