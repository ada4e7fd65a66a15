#!/usr/bin/env bash
# Runs the reader fuzz target, seeded with the fixtures of crates/rk7.
# Usage: fuzz/run.sh [seconds]   (default 1200). Needs nightly and cargo-fuzz.
# One worker (-fork=1) that carries on after a crash, so one run can find
# several; crashes land in artifacts/read/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-1200}"
mkdir -p corpus/read
cp ../crates/rk7/tests/fixtures/*.xml ../crates/rk7/tests/fixtures/fuzz/* corpus/read/
exec cargo +nightly fuzz run read corpus/read -- \
  -dict=read.dict -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -fork=1 -ignore_crashes=1 -print_final_stats=1
