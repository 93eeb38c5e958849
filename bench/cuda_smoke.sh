#!/usr/bin/env bash
# The paper path on a CUDA GPU: the smoke DAG (tiny SD1.5 / SDXL stand-ins in the real formats, Pick-a-Pic shard,
# every stage from preparation to tables) with device cuda, once per precision:
#   fp32  training.mixed_precision "no"  (its train_log is compared with a CPU run of the same config)
#   bf16  the shipped configs' setting, PyTorch SDPA attention
#   fp16  the official scripts' setting: GradScaler, skipped steps, loss scale in train_log.csv
#   sdxl  bf16, Adafactor, gradient checkpointing, two text encoders (tests/configs/smoke-sdxl.yaml)
# then prints each run's train logs, the attention processors the UNet uses, and the scores.
#
#   bash bench/cuda_smoke.sh OUT_DIR [DEVICE]      # DEVICE: cuda (default); cpu checks the script itself
#
# Needs the project's dependencies importable (pip install -e . or PYTHONPATH) and a `python` on PATH. Run it
# with DEVICE cpu on a CPU machine too: its fp32 train logs are the reference the CUDA fp32 ones are compared with.
set -uo pipefail
out=${1:?usage: bash bench/cuda_smoke.sh OUT_DIR [DEVICE]}
device=${2:-cuda}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
overlays=$(mktemp -d)
cores=$(nproc)

python - <<EOF
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
EOF

run() {  # name, mixed precision, extra configfile(s)..., then -- targets
    local name=$1 precision=$2
    shift 2
    cat > "$overlays/$name.yaml" <<EOF
run: cuda-$name
device: $device
gpus: {train: 1, sample: 1, score: 1}
training: {mixed_precision: "$precision"}
scorers: {device: $device}
sft: {steps: 6, checkpoint_every: 3}   # beyond the smoke's 2 steps, so that the losses move from log 2
dpo: {steps: 6, checkpoint_every: 3}
inpo: {steps: 6, checkpoint_every: 3}
EOF
    local files=()
    while [[ $# -gt 0 && $1 != -- ]]; do files+=("$1"); shift; done
    [[ ${1:-} == -- ]] && shift
    local start=$SECONDS
    python -m snakemake --cores "$cores" --configfile config/smoke-sd.yaml "${files[@]}" "$overlays/$name.yaml" \
        --rerun-incomplete -- "$@" > "$out/snakemake-$name.log" 2>&1
    local rc=$?
    echo "== $name: snakemake exit $rc in $((SECONDS - start)) s"
    if [[ $rc -ne 0 ]]; then
        tail -40 "$out/snakemake-$name.log"
        for f in results/cuda-$name/logs/*/*.log results/cuda-$name/logs/*.log; do
            [[ -f $f ]] && grep -l -i -E "error|traceback" "$f" >/dev/null && { echo "--- $f"; tail -30 "$f"; }
        done
    fi
}

run fp32 "no"
run bf16 bf16
run fp16 fp16
run sdxl bf16 tests/configs/smoke-sdxl.yaml -- results/cuda-sdxl/scores/inpo/hpdv2/pickscore.csv

python - "$out" <<'EOF'
import json, sys
from pathlib import Path
import pandas as pd
for name in ("fp32", "bf16", "fp16", "sdxl"):
    root = Path(f"results/cuda-{name}")
    for method in ("sft", "dpo", "inpo"):
        log = root / "models" / method / "train_log.csv"
        if log.exists():
            print(f"-- {name} {method} train_log\n{pd.read_csv(log).to_string(index=False)}")
        record = root / "models" / method / "train.json"
        if record.exists():
            r = json.loads(record.read_text())
            print(f"   train.json device/precision: {r.get('device')} {r.get('training', {}).get('mixed_precision')}")
    for scores in sorted(root.glob("scores/*/hpdv2/*.csv")):
        s = pd.read_csv(scores)
        print(f"-- {name} {scores.relative_to(root)}: n={len(s)} mean={s.score.mean():.6f} finite={s.score.notna().all()}")
    sample = root / "samples" / "inpo" / "hpdv2" / "sample.json"
    if sample.exists():
        print(f"-- {name} sample.json: {sample.read_text()[:400]}")
EOF

python - <<EOF
import torch
from diffusers import UNet2DConditionModel
unet = UNet2DConditionModel.from_pretrained("resources/smoke/sd15", subfolder="unet").to("$device")
print("attention processors:", sorted({type(p).__name__ for p in unet.attn_processors.values()}))
if torch.cuda.is_available():
    print("peak CUDA memory of this check (MiB):", torch.cuda.max_memory_allocated() // 2**20)
EOF

tar czf "$out/cuda_smoke_results.tar.gz" results/cuda-* 2>/dev/null
rm -rf "$overlays"
