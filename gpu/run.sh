#!/usr/bin/env bash
# The one command for the lent GPU machine (device tool `run`, from the repository root, with
# carry [".whl", ".gpu-data"] and, to resume earlier calls, "runs/gpu"; prepare with
# `bash gpu/prepare.sh` here first):
#
#     bash gpu/run.sh --time-budget 480            # any gpu/table3.py option may follow
#
# Installs the wheels GPU machines lack (keras, namex, optree) into /tmp/site, then runs
# gpu/table3.py: summary.json, table.md and one tar per run folder land in $OUT (runs/gpu
# without $OUT); the run folders themselves stay in runs/gpu, where a later call resumes them.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L || true
python3 gpu/table3.py --out "${OUT:-runs/gpu}" --runs-dir runs/gpu --data-dir .gpu-data "$@"
