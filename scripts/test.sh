#!/usr/bin/env bash
# Set up (as scripts/setup.sh) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# tests/evaluation/test_eval_report_browser.py renders the HTML report in a headless Chromium (skipped without one).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing chromium (apt) for the report rendering test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "!! could not install chromium; the report rendering test will be skipped"
  else
    echo "!! no chromium and apt-get is not available (or not root): the report rendering test will be skipped"
  fi
fi
. .venv/bin/activate
python -m pytest -p no:cacheprovider "$@"
