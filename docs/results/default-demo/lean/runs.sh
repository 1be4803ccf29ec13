#!/usr/bin/env bash
# The embedded default against lean updates (rule.md), seeds 0-2, one run at a time. Usage: runs.sh OUT
set -u
OUT=${1:?usage: runs.sh OUT}
for seed in 0 1 2; do
  for side in default lean; do
    dir=$OUT/$side-seed$seed; mkdir -p "$dir"
    printf 'seed = %s\n' "$seed" > "$dir/run.toml"
    [ "$side" = lean ] && printf 'update-compression = "int8"\nclient-train-layers = 1\n' >> "$dir/run.toml"
    start=$(date +%s)
    FEDLANHAR_OUT=$dir/run bash scripts/run.sh "$dir/run.toml" > "$dir/log.txt" 2>&1
    echo "$side seed$seed rc $? wall $(( $(date +%s) - start )) s" >> "$OUT/walls.txt"
  done
done
