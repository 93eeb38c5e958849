"""Memory at paper scale, by arithmetic (no weights are needed): what the suite used to hold and what it holds now.

    python bench/memory.py

1. SDXL sampling used to text-encode a whole prompt set in one call. With output_hidden_states=True both CLIP
   encoders keep the hidden states of every layer (plus the embeddings) for every prompt; HPDv2 has 3,200 prompts.
   Sampling now encodes each sampling batch's prompts only.
2. The SDXL base_model job used to load the whole pipeline in float32 on a CPU node; it now reads configs and
   weight-file headers only (models/check.py).
3. Disk encoding (config/sd15.yaml): float16 latents of both flips of both images of every pair.
"""

from __future__ import annotations

GB = 1e9
TOKENS = 77
# (layers, hidden size) of SDXL's two text encoders: CLIP ViT-L/14 and OpenCLIP ViT-bigG/14
SDXL_TEXT = [(12, 768), (32, 1280)]
# parameters of SDXL 1.0's components (diffusers' model cards / num_parameters())
SDXL_PARAMS = {"unet": 2_567_463_684, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840, "vae": 83_653_863}


def hidden_states_bytes(prompts: int, bytes_per_value: int = 2) -> float:
    """All layers' hidden states (layers + 1 tensors of prompts x 77 x width) of both encoders."""
    return sum((layers + 1) * prompts * TOKENS * width * bytes_per_value for layers, width in SDXL_TEXT)


def main() -> None:
    hpdv2, batch = 3200, 4  # prompts; config/sdxl.yaml sample.batch_size
    before, after = hidden_states_bytes(hpdv2), hidden_states_bytes(batch)
    print(
        f"1. SDXL text encoding, float16 hidden states: HPDv2 at once {before / GB:.1f} GB -> per batch of "
        f"{batch} {after / 1e6:.1f} MB"
    )
    weights = sum(SDXL_PARAMS.values()) * 4
    print(
        f"2. SDXL pipeline in float32: {weights / GB:.1f} GB (mem_mb was 16000); the check reads configs and "
        "safetensors headers (kilobytes)"
    )
    pairs, latent = 851_000, 4 * 64 * 64
    disk = pairs * 2 * 2 * latent * 2
    context = 59_000 * TOKENS * 768 * 2
    print(
        f"3. SD1.5 disk encoding: latents {disk / GB:.0f} GB (2 images x 2 flips x 4x64x64 float16 per pair) + "
        f"text contexts {context / GB:.1f} GB for ~59k unique captions"
    )


if __name__ == "__main__":
    main()
