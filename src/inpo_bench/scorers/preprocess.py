"""Image preprocessing of the real scorers, written out so each matches its upstream exactly.

- CLIP-style (ImageReward, LAION aesthetic): resize the shortest edge to `size` with PIL bicubic, centre-crop
  `size` x `size`, convert to RGB, normalise with OpenAI CLIP's mean and std, in the order of OpenAI CLIP's
  `_transform` (clip/clip.py), which ImageReward (ImageReward/ImageReward.py `_transform`) copies and the
  aesthetic predictor uses: a non-RGB file is resized in its own mode (PIL resizes RGBA with premultiplied alpha
  and a palette image always with nearest neighbour) and converted afterwards. The crop offset is rounded as
  torchvision's CenterCrop does (`round((H - h) / 2)`), which is what the upstream packages run; Hugging Face's
  image processors floor it instead, which PickScore and the CLIP score inherit from their HF processors (1 px
  apart when H - h is odd).
- HPS letterbox: convert to RGB, scale the longest edge to `size` (bicubic with antialiasing on the float tensor,
  like open_clip's ResizeMaxSize on a tensor), zero-pad to a square with the extra pixel on the right / bottom,
  then normalise.
  Deviation: upstream skips the padding too when the longest edge is already `size`, so a non-square image of
  that size crashes its batch; here it is padded like any other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_MEAN).reshape(3, 1, 1)
    std = torch.tensor(OPENAI_STD).reshape(3, 1, 1)
    return (x - mean) / std


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def resize_shortest_edge(image: Image.Image, size: int) -> Image.Image:
    """torchvision Resize(size) on a PIL image: short side to `size`, long side to int(size * long / short)."""
    w, h = image.size
    if min(w, h) == size:
        return image
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return image.resize(new, Image.BICUBIC)


def crop_offsets(height: int, width: int, size: int, rounding: str) -> tuple[int, int]:
    """Top and left of a centred size x size crop: 'round' as torchvision, 'floor' as Hugging Face."""
    if rounding == "round":
        return round((height - size) / 2.0), round((width - size) / 2.0)  # Python rounds halves to even
    if rounding == "floor":
        return (height - size) // 2, (width - size) // 2
    raise ValueError(f"rounding must be 'round' or 'floor', got {rounding!r}")


def clip_preprocess(images: list[Image.Image], size: int = 224, rounding: str = "round") -> torch.Tensor:
    """Shortest-edge resize and centre crop in the image's own mode, then RGB and CLIP normalisation:
    (N, 3, size, size)."""
    out = []
    for image in images:
        resized = resize_shortest_edge(image, size)
        top, left = crop_offsets(resized.height, resized.width, size, rounding)
        out.append(_normalise(to_tensor(resized.crop((left, top, left + size, top + size)))))
    return torch.stack(out)


def letterbox(images: list[Image.Image], size: int = 224) -> torch.Tensor:
    """HPS preprocessing: longest edge to `size`, centred zero padding, CLIP normalisation: (N, 3, size, size)."""
    out = []
    for image in images:
        x = to_tensor(image)
        h, w = x.shape[1:]
        scale = size / max(h, w)
        if scale != 1.0:
            x = F.interpolate(
                x[None], size=(round(h * scale), round(w * scale)), mode="bicubic", align_corners=False, antialias=True
            )[0]
        ph, pw = size - x.shape[1], size - x.shape[2]
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
        out.append(_normalise(x))
    return torch.stack(out)
