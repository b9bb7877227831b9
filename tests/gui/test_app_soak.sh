#!/usr/bin/env bash
# Soak test (label fuzz): sprint-studio plays thousands of random input events under a private X server while its
# resident memory is sampled; see soak.py. Usage: test_app_soak.sh SPRINT_STUDIO MODEL OUT_DIR [EVENTS] [SEED]
# Exit 77 (CTest SKIP_RETURN_CODE) when no X server can be started.
set -u
studio=$1 model=$2 out=$3 events=${4:-3000} seed=${5:-20261207}
source "$(dirname "$0")/xvfb.sh"
python3 "$(dirname "$0")/soak.py" --studio "$studio" --model "$model" --out "$out" --events "$events" --seed "$seed"
