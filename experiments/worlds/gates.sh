#!/usr/bin/env bash
# The four world checks of issue 30 on a world config: copies the world's run (world, VAE, base, prompt sets) into
# one run per gate so that each retrains only what its preferences change, then runs each gate's overlay.
#   bash experiments/worlds/gates.sh experiments/worlds/l1-latent.yaml w-l1
set -euo pipefail
world=${1:?usage: gates.sh WORLD_CONFIG RUN [OVERLAY] [GATES...]}
run=${2:?usage: gates.sh WORLD_CONFIG RUN [OVERLAY] [GATES...]}
overlay=${3:-}   # e.g. the methods' learning rates
shift $(( $# < 3 ? $# : 3 ))
gates=${*:-g2-random g3-mode g4-oracle}
for gate in $gates; do
    target=results/$run-$gate
    mkdir -p "$target/models"
    cp -a "results/$run/world.json" "results/$run/prompts" "$target/"
    cp -a "results/$run/models/base" "$target/models/"
    [[ -d results/$run/models/vae ]] && cp -a "results/$run/models/vae" "$target/models/"
    snakemake --cores 2 --configfile "$world" $overlay "experiments/worlds/gate-$gate.yaml" --config "run=$run-$gate" \
        > "/tmp/gate-$run-$gate.log" 2>&1 || { echo "gate $gate failed: /tmp/gate-$run-$gate.log"; exit 1; }
    echo "gate $gate done: $target/tables/mean_scores.md"
done
