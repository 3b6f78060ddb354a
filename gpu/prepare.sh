#!/usr/bin/env bash
# Prepares what gpu/run.sh needs on a machine with a GPU but without network access, whose
# Python 3.12 (Linux x86-64) has JAX for CUDA and Keras's other requirements (numpy, scipy,
# h5py, ml-dtypes, absl-py, rich, packaging, typing-extensions ...) but perhaps neither Keras
# nor TensorFlow. (Where the machine with the GPU has network, this step is not needed: install
# the project there with pip install -e ".[jax-cuda]" (README, "Install") and run
# python gpu/table3.py --out runs/gpu --data-dir DATA.) Run it on a machine with network, from
# the repository root:
#
#     bash gpu/prepare.sh                # MNIST and CIFAR-10
#     bash gpu/prepare.sh mnist          # MNIST only (the MNIST configurations need no more)
#
# It fills two folders that git ignores (through .git/info/exclude); copy the repository with
# them to the machine with a GPU, then run `bash gpu/run.sh` on that machine (see gpu/table3.py):
#   .whl/       the wheels such a machine lacks: keras (the version of the development
#               environment), namex, optree (cp312 manylinux) and typing-extensions (optree
#               imports it; most JAX installations have it, the wheel is a 45 kB safety net);
#   .gpu-data/  the datasets in the layout aatk.datasets reads under a data_dir
#               (gpu/table3.py --data-dir .gpu-data): mnist/ with MNIST's four idx .gz files
#               (11 MiB) and cifar10/cifar-10-batches-bin/ with CIFAR-10's binary version
#               (176 MiB).
# Arguments: the datasets to copy, mnist and/or cifar10 (default both); a dataset not named
# is removed from .gpu-data/.
# Environment: AATK_SHARED_DATA (default ../shared/data), the folder holding mnist/ and
# cifar10/cifar-10-batches-bin/ (or cifar-10-batches-bin/); DEV_PYTHON (default the
# repository's .venv/bin/python), the Python whose keras version is copied.
set -euo pipefail

if [[ ! -d aatk || ! -f pyproject.toml ]]; then
    echo "prepare.sh: run me from the repository root (bash gpu/prepare.sh)" >&2
    exit 2
fi

DATASETS=("$@")
[[ ${#DATASETS[@]} -gt 0 ]] || DATASETS=(mnist cifar10)
want_mnist=0
want_cifar10=0
for dataset in "${DATASETS[@]}"; do
    case "$dataset" in
        mnist) want_mnist=1 ;;
        cifar10) want_cifar10=1 ;;
        *) echo "prepare.sh: unknown dataset '$dataset'; choose mnist and/or cifar10" >&2; exit 2 ;;
    esac
done

DEV_PYTHON=${DEV_PYTHON:-$PWD/.venv/bin/python}
SHARED_DATA=${AATK_SHARED_DATA:-../shared/data}
if [[ ! -x "$DEV_PYTHON" ]]; then
    echo "prepare.sh: no Python at $DEV_PYTHON (create the repository's .venv, or set DEV_PYTHON)" >&2
    exit 2
fi

# --- the data first: checked before anything is downloaded -------------------------------------
mnist_source=""
if (( want_mnist )); then
    for candidate in "$SHARED_DATA/mnist" "$SHARED_DATA"; do
        if [[ -f "$candidate/train-images-idx3-ubyte.gz" ]]; then mnist_source=$candidate; break; fi
    done
    if [[ -z "$mnist_source" ]]; then
        echo "prepare.sh: no MNIST .gz files in $SHARED_DATA/mnist (set AATK_SHARED_DATA)" >&2
        exit 2
    fi
fi
cifar10_source=""
if (( want_cifar10 )); then
    for candidate in "$SHARED_DATA/cifar10/cifar-10-batches-bin" "$SHARED_DATA/cifar-10-batches-bin"; do
        if [[ -f "$candidate/data_batch_1.bin" ]]; then cifar10_source=$candidate; break; fi
    done
    if [[ -z "$cifar10_source" ]]; then
        echo "prepare.sh: no CIFAR-10 binary version in $SHARED_DATA/cifar10/cifar-10-batches-bin (set AATK_SHARED_DATA)" >&2
        exit 2
    fi
fi

# --- versions: those of the development environment where it has the package, else a pinned default
version_of() {  # version_of DIST DEFAULT
    local found
    found=$("$DEV_PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true)
    echo "${found:-$2}"
}
KERAS_VERSION=$("$DEV_PYTHON" -c 'import importlib.metadata as m; print(m.version("keras"))' 2>/dev/null | tail -n 1)
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
    "$DEV_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
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

# --- the datasets, in aatk.datasets' layout under a data_dir ----------------------------------------
mkdir -p .gpu-data
if (( want_mnist )); then
    mkdir -p .gpu-data/mnist
    for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        install -m 0644 "$mnist_source/$name.gz" .gpu-data/mnist/
    done
else
    rm -rf .gpu-data/mnist
fi
if (( want_cifar10 )); then
    mkdir -p .gpu-data/cifar10/cifar-10-batches-bin
    for name in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
        install -m 0644 "$cifar10_source/$name.bin" .gpu-data/cifar10/cifar-10-batches-bin/
    done
    if [[ -f "$cifar10_source/batches.meta.txt" ]]; then
        install -m 0644 "$cifar10_source/batches.meta.txt" .gpu-data/cifar10/cifar-10-batches-bin/
    fi
else
    rm -rf .gpu-data/cifar10
fi

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

# --- what was prepared ------------------------------------------------------------------------------
ls -l .whl
ls -lR .gpu-data
du -sh .whl .gpu-data
echo "prepare.sh: ready for a machine with a GPU (${DATASETS[*]}). Copy the repository with .whl/ and .gpu-data/"
echo "            to it, then run from its root: bash gpu/run.sh --time-budget SECONDS (see gpu/table3.py)."
if (( ! want_cifar10 )); then
    echo "            Without CIFAR-10, name the configurations: bash gpu/run.sh --configs mnist_st mnist_at_half \\"
    echo "                mnist_aat mnist_aat++ mnist_aat_pgd40 mnist_aat++_pgd40"
fi
