#!/usr/bin/env bash
# backend: hf against backend: unsloth on the GPU device (sft, dpo, kto on a random 1B Llama).
#
# Here, once (the device has no network):  bash bench/gpu/prepare.sh      # wheels + tokenizer into .whl/
# Then, through the device tool:           run(command="bash bench/gpu/run.sh", carry=[".whl"], timeout_s=540)
# The table is printed at the end; the rows also go to $OUT/gpu-backends.jsonl (or /tmp without $OUT).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
results=$out/gpu-backends.jsonl
: >"$results"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)"

model=/tmp/llama-1b
[ -f $model/config.json ] || python3 bench/gpu/backends.py build $model .whl/tokenizer || exit 1
for stage in ${STAGES:-sft dpo kto}; do
    for backend in hf unsloth; do  # each run in a fresh process: Unsloth patches what it imports for good
        echo "== $stage $backend"
        timeout 240 python3 bench/gpu/backends.py run $model $stage $backend 2>"$out/$stage-$backend.err" \
            | tee -a "$results" | tail -1
        tail -3 "$out/$stage-$backend.err"
    done
done
python3 bench/gpu/backends.py table "$results"
