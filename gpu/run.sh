#!/usr/bin/env bash
# The one command on a machine with a GPU, from the repository root, after `bash gpu/prepare.sh`
# (run on a machine with network) and a copy of the repository with its .whl/ and .gpu-data/:
#
#     bash gpu/run.sh --time-budget 3600         # any gpu/table3.py option may follow
#
# Installs the wheels of .whl/ (keras, namex, optree, typing-extensions) into /tmp/site where
# there are any, then runs gpu/table3.py with the JAX backend. The run folders live in runs/gpu,
# where the next call resumes them. summary.json and table.md land in runs/gpu, or in the folder
# that the environment variable OUT names (with one tar per run folder, to bring back from the
# machine and unpack into runs/gpu elsewhere): a batch system's output folder, say. An --out
# option given to this script wins over both.
set -uo pipefail

if [[ ! -f gpu/table3.py ]]; then
    echo "run.sh: run me from the repository root (bash gpu/run.sh)" >&2
    exit 2
fi
shopt -s nullglob
wheels=(.whl/*.whl)
if (( ${#wheels[@]} )); then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}" \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "run.sh: no wheels in .whl/ (bash gpu/prepare.sh makes them); using the installed keras" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if command -v nvidia-smi >/dev/null; then nvidia-smi -L || true; fi
exec python3 gpu/table3.py --out "${OUT:-runs/gpu}" --runs-dir runs/gpu --data-dir .gpu-data "$@"
