#!/usr/bin/env bash
# bench_partitions.sh BUILD - the controller's cost per partition at 10,000 and
# 100,000 partitions of one asset (bench/part_cost.c on the controller's
# objects): CPU per partition against one unpartitioned materialization
# measured in the same run, peak heap per partition, status size.
# PART_COST_SIZES overrides the sizes ("10000 100000").
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
BIN=$BUILD/bench/part_cost
mkdir -p "$BUILD/bench"
objs=()
for o in "$BUILD"/controller/*.o "$BUILD"/controller/kube/*.o "$BUILD"/controller/lib/*.o; do
  [ "$(basename "$o")" = main.o ] || objs+=("$o")
done
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -I"$ROOT/controller" -I"$ROOT/proto" -I"$BUILD/gen" \
  $(pkg-config --cflags jansson) "$ROOT/bench/part_cost.c" "${objs[@]}" -o "$BIN" \
  $(pkg-config --libs libcurl jansson openssl yaml-0.1 libwebsockets) -lm -lpthread || exit 1
# shellcheck disable=SC2086
"$BIN" ${PART_COST_SIZES:-10000 100000}
