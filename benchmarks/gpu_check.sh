#!/bin/bash
# The GPU checks of language-model MAS in one run (about 5 minutes on one H200), each benchmark's output in $OUT/NAME.txt:
#   memory            28 layers of the 1.5B model's shapes in bf16: every phase's peak beside its formula, B = 16 and 128,
#                     and the calls in a training step that make the host wait for the device
#   memory_recompute  the same training step at B = 128 with recompute_layers=True
#   memory_full       2 layers with rotation='full' (d x d matrix exponentials): its device waits
#   speed             our step against pyvene 0.1.8 and the frozen model's floor (benchmarks/llm_speed.py)
#   speed_paper_shape the same at the 1.5B model's shapes (fp32)
# Python packages the machine lacks (fastcore, pyvene) come as wheels in .whl/ (see the device tool's notes):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl fastcore==1.14.5 pyvene==0.1.8
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"

run() {  # run NAME SECONDS SCRIPT ARGS...: stdout to $OUT/NAME.txt and here, stderr's tail on failure
  local name=$1 limit=$2; shift 2
  local start=$(date +%s)
  echo "== $name: $*"
  timeout "$limit" python3 "$@" 2>"$OUT/$name.err" | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: rc $rc, $(( $(date +%s) - start )) s"
  [ "$rc" = 0 ] || tail -5 "$OUT/$name.err"
}
run memory 200 benchmarks/llm_memory.py --layers 28 --batch 16 128 --device cuda --dtype bf16 --latents batch
run memory_recompute 120 benchmarks/llm_memory.py --layers 28 --batch 128 --device cuda --dtype bf16 --latents batch \
    --recompute-layers --no-extrapolation
run speed 150 benchmarks/llm_speed.py --device cuda
run speed_paper_shape 150 benchmarks/llm_speed.py --device cuda --shape paper --vocab 151936 --steps 3 --rounds 2
run memory_full 60 benchmarks/llm_memory.py --layers 2 --batch 16 --device cuda --dtype bf16 --latents batch --rotation full \
    --n-train 1000 --n-valid 100 --n-test 100 --no-extrapolation
