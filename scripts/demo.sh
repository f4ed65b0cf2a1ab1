#!/usr/bin/env bash
# README command 1: install dependencies, build, run the simulator's built-in default scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
mkdir -p out
./build/release/scheduler/sim/tideslice-sim --svg out/demo.svg "$@"
echo "chart written to out/demo.svg"
