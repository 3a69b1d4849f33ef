#!/usr/bin/env bash
# The GPU check in one command on a GPU machine (what it measures: benchmarks/gpu_check.py's docstring).
# Results go to $OUT (default ./gpu-check-out): gpu_check.json, logs.tar.gz, train128_samples.png.
# Wheels in .whl/ (for a machine without a package index) are installed to /tmp/site first.
set -u
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# batch-size search: an out-of-memory attempt must not leave the next one a fragmented cache
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
exec python3 benchmarks/gpu_check.py --out "${OUT:-gpu-check-out}" "$@"
