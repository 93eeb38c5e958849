#!/usr/bin/env bash
# The throwaway venv of bench/upstream_compare.py, outside the project: the upstream packages cannot be its
# dependencies (torchvision, transformers 4.45.2, timm 0.6.13, pinned pytest...). Usage: bench/upstream_setup.sh DIR
# torch 2.14.1 + torchvision 0.29.1 is the pair that imports together on this kind of machine (x86_64; a CUDA
# build that runs on the CPU); hpsv3 goes in without its dependencies (deepspeed, flash-attn, a timm >= 0.9 that
# image-reward's pin excludes; its inference path needs none of them); openai-clip still imports pkg_resources
# (setuptools < 81); image-reward imports diffusers, whose newest release wants a newer peft than trl 0.11 takes.
set -euo pipefail
VENV=${1:?usage: bench/upstream_setup.sh DIR}
python3 -m venv "$VENV"
printf 'torch==2.14.1\ntorchvision==0.29.1\ntransformers==4.45.2\n' > "$VENV/constraints.txt"
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -q -c "$VENV/constraints.txt" transformers==4.45.2 peft==0.13.2 trl==0.11.4 accelerate==1.0.1 \
  setuptools\<81 datasets omegaconf fire matplotlib tensorboard rich pandas pyyaml safetensors \
  hpsv2x==1.2.0 image-reward==1.5 diffusers==0.30.3 openai-clip==1.0.1 torchmetrics==1.9.0
"$VENV/bin/pip" install -q --no-deps hpsv3==1.0.0
# hpsv2x pins protobuf < 4, but hpsv3's trainer module imports tensorboard, which needs >= 6.31; hpsv2 runs with it
"$VENV/bin/pip" install -q "protobuf>=6.31.1,<8"
echo "ready: python bench/upstream_compare.py --python $VENV/bin/python"
