#!/usr/bin/env bash
# Create the virtual environment and install the course into it, without pulling a CUDA build of
# torch onto a machine that has no GPU:
#  - torch already importable by $PYTHON (your own CPU or CUDA build): the venv sees it and keeps it;
#  - otherwise torch is installed first, pinned ($TORCH_SPEC), then everything else, which then
#    finds its torch requirement already met.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "[install] reusing the torch that $PYTHON already has: $("$PYTHON" -c 'import torch; print(torch.__version__)')"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[install] installing $TORCH_SPEC first"
  $PIP install --quiet "$TORCH_SPEC"
fi
echo "[install] torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
$PIP install --quiet -e ".[dev]"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
echo "[install] done: $("$VENV/bin/python" --version), course_lib installed in editable mode"
