#!/usr/bin/env bash
# Creates the virtual environment that `make run` and `make test` use, and installs gumbelkit in it
# with its extras. Run by make; safe to run again.
#
# PyTorch: a torch that is already importable (the venv sees the system's site-packages) is kept,
# so a user's own build (CUDA or not) is never replaced. Only when there is none is TORCH_SPEC
# installed, by default torch==2.13.0: on this project's machines pip takes the CPU build of that
# release from the local wheel directory in seconds (an unpinned `torch` would pull a CUDA build of
# several GB). Set TORCH_SPEC to choose another build.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
extras="${EXTRAS:-dev,lab}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv --system-site-packages "$venv"
fi
if "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: using the installed torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
else
  echo "setup: no torch found; installing ${TORCH_SPEC:-torch==2.13.0}"
  "$venv/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
"$venv/bin/python" -m pip install --quiet --editable ".[$extras]"
