#!/usr/bin/env bash
# Installs everything bigbigan needs on a fresh Debian machine (Python >= 3.10): the Fashion-MNIST package
# when apt is available, a virtual environment in .venv, PyTorch and the project with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing dataset-fashion-mnist (apt)"
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "!! could not install dataset-fashion-mnist; the demo will use scikit-learn's digits instead"
  else
    echo "!! apt-get is not available (or not root): Fashion-MNIST not installed; the demo will use digits"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "== installing torch and torchvision"
  python -m pip install -q "torch==${TORCH_VERSION:-2.14.1}" "torchvision==${TORCHVISION_VERSION:-0.29.1}"
fi
echo "== installing bigbigan"
python -m pip install -q -e ".[fid,fast,test]"
