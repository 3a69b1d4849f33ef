#!/usr/bin/env bash
# Set up (as scripts/setup.sh) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -p no:cacheprovider "$@"
