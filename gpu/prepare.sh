#!/usr/bin/env bash
# Prepares what gpu/run.sh needs on the lent GPU machine, which has Python 3.12, JAX (CUDA),
# numpy, scipy, h5py, ml-dtypes, absl-py, rich, packaging, typing-extensions ... but no
# TensorFlow, no Keras and no network. Run it here, from the repository root:
#
#     bash gpu/prepare.sh
#
# It fills two folders that git ignores (through .git/info/exclude) and that the device call
# must name in `carry`:
#   .whl/       the wheels the GPU machine lacks: keras (the version of the dev venv), namex,
#               optree (cp312 manylinux) and typing-extensions (optree imports it; the image
#               has it too, the wheel is a 45 kB safety net);
#   .gpu-data/  MNIST's four idx .gz files (gpu/table3.py --data-dir .gpu-data).
# Environment: AATK_SHARED_DATA (default ../shared/data), the folder holding mnist/;
# DEV_PYTHON (default /tmp/venv0/bin/python), the venv whose keras version is copied.
set -euo pipefail

if [[ ! -d aatk || ! -f pyproject.toml ]]; then
    echo "prepare.sh: run me from the repository root (bash gpu/prepare.sh)" >&2
    exit 2
fi

DEV_PYTHON=${DEV_PYTHON:-/tmp/venv0/bin/python}
SHARED_DATA=${AATK_SHARED_DATA:-../shared/data}

# --- versions: those of the dev venv where it has the package, else a pinned default ---------
version_of() {  # version_of DIST DEFAULT
    local found
    found=$("$DEV_PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true)
    echo "${found:-$2}"
}
KERAS_VERSION=$("$DEV_PYTHON" -c 'import keras; print(keras.__version__)' 2>/dev/null | tail -n 1)
if [[ -z "$KERAS_VERSION" ]]; then
    echo "prepare.sh: cannot read the keras version from $DEV_PYTHON (set DEV_PYTHON)" >&2
    exit 2
fi
NAMEX_VERSION=$(version_of namex 0.1.0)
OPTREE_VERSION=$(version_of optree 0.20.0)
TYPING_EXTENSIONS_VERSION=$(version_of typing_extensions 4.16.0)

# --- wheels -----------------------------------------------------------------------------------
mkdir -p .whl
download() {  # download NAME==VERSION
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$1"
}
# One version of each package only: two wheels of one name stop the install on the GPU machine.
keep_only() {  # keep_only PREFIX WHEEL-FILE-NAME-PREFIX-OF-THE-WANTED-VERSION
    local wheel
    for wheel in .whl/"$1"-*.whl; do
        [[ -e "$wheel" ]] || continue
        [[ "$(basename "$wheel")" == "$2"-* ]] || { echo "prepare.sh: removing stale $wheel"; rm -f "$wheel"; }
    done
}
keep_only keras "keras-$KERAS_VERSION"
keep_only namex "namex-$NAMEX_VERSION"
keep_only optree "optree-$OPTREE_VERSION"
keep_only typing_extensions "typing_extensions-$TYPING_EXTENSIONS_VERSION"
download "keras==$KERAS_VERSION"
download "namex==$NAMEX_VERSION"
download "optree==$OPTREE_VERSION"
download "typing_extensions==$TYPING_EXTENSIONS_VERSION"

# Every requirement of keras must be on the GPU machine or among the wheels.
on_gpu="absl-py numpy rich namex h5py optree ml-dtypes packaging scipy markdown-it-py mdurl pygments matplotlib typing-extensions"
missing=""
for requirement in $(unzip -p .whl/keras-"$KERAS_VERSION"-*.whl '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
                     | sed -E 's/^Requires-Dist: *([A-Za-z0-9_.-]+).*/\1/' | tr 'A-Z_.' 'a-z--'); do
    [[ " $on_gpu " == *" $requirement "* ]] || missing="$missing $requirement"
done
if [[ -n "$missing" ]]; then
    echo "prepare.sh: keras $KERAS_VERSION requires packages neither on the GPU machine nor in .whl:$missing" >&2
    exit 1
fi
for wheel in .whl/optree-*.whl; do
    [[ "$wheel" == *cp312-cp312-manylinux*x86_64*.whl ]] || { echo "prepare.sh: $wheel is not a cp312 manylinux x86_64 wheel" >&2; exit 1; }
done

# --- MNIST --------------------------------------------------------------------------------------
mnist_source=""
for candidate in "$SHARED_DATA/mnist" "$SHARED_DATA"; do
    if [[ -f "$candidate/train-images-idx3-ubyte.gz" ]]; then mnist_source=$candidate; break; fi
done
if [[ -z "$mnist_source" ]]; then
    echo "prepare.sh: no MNIST .gz files in $SHARED_DATA/mnist (set AATK_SHARED_DATA)" >&2
    exit 2
fi
mkdir -p .gpu-data/mnist
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    install -m 0644 "$mnist_source/$name.gz" .gpu-data/mnist/
done

# --- ignored, through .git/info/exclude (not .gitignore) -----------------------------------------
exclude=.git/info/exclude
if [[ -d .git ]]; then
    mkdir -p .git/info
    touch "$exclude"
    for pattern in /.whl/ /.gpu-data/; do
        grep -qxF "$pattern" "$exclude" || echo "$pattern" >> "$exclude"
    done
else
    echo "prepare.sh: warning: no .git folder here; make sure .whl/ and .gpu-data/ are ignored" >&2
fi

# --- sizes ----------------------------------------------------------------------------------------
ls -l .whl .gpu-data/mnist
du -sh .whl .gpu-data
total=$(du -sbc .whl .gpu-data | tail -n 1 | cut -f 1)
echo "prepare.sh: .whl + .gpu-data = $total bytes ($((total / 1024 / 1024)) MiB; the device call's limit is 64 MiB in all)"
echo "prepare.sh: device call: command 'bash gpu/run.sh --time-budget 540', timeout_s 600,"
echo "            carry [\".whl\", \".gpu-data\"] (add \"runs/gpu\" to resume; see gpu/table3.py)"
