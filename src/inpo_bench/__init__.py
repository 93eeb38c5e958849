"""inpo-bench: a reproducible benchmark of preference alignment for text-to-image diffusion (DDIM-InPO and peers)."""

__version__ = "0.1.0"
