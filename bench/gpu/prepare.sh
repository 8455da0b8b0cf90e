#!/usr/bin/env bash
# What bench/gpu/run.sh needs on the GPU device, which has no network: the wheels in bench/gpu/wheels.txt
# (Python 3.12, x86_64, with the pip flags from the device README) and SmolLM2's tokenizer, into .whl/
# (ignored by git; carried with carry=[".whl"]). Run from the repo root here, after `make install`.
set -euo pipefail
limit_mib=55  # the whole working tree travels under 64 MiB; leave room for the repo itself

grep -qxF /.whl/ .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
rm -rf .whl && mkdir .whl
mapfile -t specs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' bench/gpu/wheels.txt)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}"

.venv/bin/python -c "
from transformers import AutoTokenizer
from tunekit.models import resolve_model
AutoTokenizer.from_pretrained(resolve_model('smollm2-135m-instruct')).save_pretrained('.whl/tokenizer')"

count=$(ls .whl/*.whl | wc -l)
[ "$count" -eq "${#specs[@]}" ] || { echo "error: ${#specs[@]} wheels listed, $count in .whl/" >&2; exit 1; }
total=$(du -sb .whl | cut -f1)
echo "$count wheels and the tokenizer, $((total / 1048576)) MiB in .whl/"
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
    echo "error: over ${limit_mib} MiB; split the wheels across two device calls" >&2
    exit 1
fi
