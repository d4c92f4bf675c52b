#!/usr/bin/env bash
# Create the virtual environment and install the course into it (`make setup` runs this).
#  - torch already importable by $PYTHON (your own CPU or CUDA build): the venv sees it and keeps it.
#  - otherwise torch is installed first, pinned ($TORCH_SPEC):
#      Linux without an NVIDIA GPU (no `nvidia-smi`): the CPU-only build from the PyTorch CPU index
#        ($TORCH_CPU_INDEX; torch 2.13.0+cpu is a 190 MB wheel). If that index cannot be reached (a firewall, a machine that only reaches
#        package registries), it falls back to the default index and says what that installs: on Linux, PyPI's torch
#        is the CUDA build (several GB with its nvidia-* libraries; it runs on a CPU too), while a mirror or a local
#        wheel folder that holds a CPU wheel (as in CI) gives the CPU build.
#      Linux with an NVIDIA GPU: the default index's build, which is the CUDA build.
#      macOS and others: the default index's build (on macOS it is the CPU/MPS build).
#  - then course_lib with the extras $EXTRAS (default `course,dev`: every chapter, the tests and nbdev), whose torch
#    requirement is then already met. `pip install .` alone installs only the library core (see README).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
EXTRAS=${EXTRAS-course,dev}      # EXTRAS= (empty): the library core only

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "[install] reusing the torch that $PYTHON already has: $("$PYTHON" -c 'import torch; print(torch.__version__)')"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip || echo "[install] could not upgrade pip; continuing with $($PIP --version)"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "[install] no NVIDIA GPU here (no nvidia-smi): installing the CPU-only build of $TORCH_SPEC from $TORCH_CPU_INDEX"
    log=$(mktemp)
    if $PIP install --quiet --timeout 10 --retries 0 --index-url "$TORCH_CPU_INDEX" "$TORCH_SPEC" >"$log" 2>&1; then
      rm -f "$log"
    else
      echo "[install] the PyTorch CPU index gave no $TORCH_SPEC (pip: $(tail -n 1 "$log"))"
      rm -f "$log"
      echo "[install] falling back to the default index for $TORCH_SPEC. On Linux, PyPI's torch is the CUDA build:"
      echo "[install] several GB with its nvidia-* libraries, and it runs on this CPU too. To get the small CPU build"
      echo "[install] later: $VENV/bin/pip install --force-reinstall --index-url $TORCH_CPU_INDEX $TORCH_SPEC"
      $PIP install --quiet "$TORCH_SPEC"
    fi
  else
    echo "[install] installing $TORCH_SPEC from the default index ($(uname -s)$(command -v nvidia-smi >/dev/null 2>&1 && echo ', NVIDIA GPU: the CUDA build'))"
    $PIP install --quiet "$TORCH_SPEC"
  fi
fi
echo "[install] torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "(CUDA " + torch.version.cuda + " build)" if torch.version.cuda else "(CPU build)")')"
$PIP install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
if "$VENV/bin/python" -c "import ipykernel" 2>/dev/null; then     # the notebooks' kernel (with the `course` extra)
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
fi
echo "[install] done: $("$VENV/bin/python" --version), course_lib${EXTRAS:+[$EXTRAS]} installed in editable mode"
