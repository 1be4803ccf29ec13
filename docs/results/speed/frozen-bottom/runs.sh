#!/usr/bin/env bash
# before (c77f11d in /work/ci-prof) and after (/work/main @ 1301037), seeds 1 and 2, seed-0 text encoder
set -u
for seed in 1 2; do
  for side in before after; do
    repo=/work/main; [ $side = before ] && repo=/work/ci-prof
    out=/work/frozen-runs/$side-seed$seed; mkdir -p $out
    cp /work/main/configs/federated-mixed.toml $out/run.toml
    printf 'seed = %s\ntext-encoder-path = "/work/te-seed0/text_encoder"\n' $seed >> $out/run.toml
    start=$(date +%s)
    (cd $repo && NUM_CLIENTS=52 FEDLANHAR_OUT=$out/run bash scripts/run.sh $out/run.toml > $out/log.txt 2>&1)
    echo "$side seed$seed rc $? wall $(( $(date +%s) - start )) s" >> /work/frozen-runs/walls.txt
  done
done
