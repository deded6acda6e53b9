#!/bin/sh
# A stand-in for `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` on the
# simulated Spark 2: prints gpu.csv beside this script (the tests write the figures,
# `[N/A]` included, as the GB10 prints them); without gpu.csv it fails as nvidia-smi
# does when it cannot reach the driver. Spark-control only ever sends the query form.
here="$(dirname "$0")"
if [ ! -f "$here/gpu.csv" ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
  exit 9
fi
cat "$here/gpu.csv"
