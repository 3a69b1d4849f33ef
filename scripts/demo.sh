#!/usr/bin/env bash
# The main job: set up, train small32 BigBiGAN for a few minutes on Fashion-MNIST (digits if it is missing),
# evaluate the EMA encoder and generator, and write an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

DATA=fashion-mnist
[ -d /usr/share/datasets/fashion-mnist ] || DATA=digits
OUT=${OUT:-runs/demo}
MINUTES=${MINUTES:-3}

bigbigan train --scale small32 --variant base --data "$DATA" --out "$OUT" --minutes "$MINUTES" --steps 100000 \
  --set train.eval_every=0
bigbigan eval "$OUT" --metrics linear,knn,fid,kid,recon --fid-samples 500 --probe-steps 1000 \
  --feature avepool --train-limit 10000
bigbigan report "$OUT"
echo
echo "Done. Look at: $OUT/report/index.html (open it in a browser), $OUT/eval.json, $OUT/images/"
