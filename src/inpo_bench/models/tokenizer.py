"""A CLIP byte-level BPE tokenizer built offline for a small word list.

Same class and format as Stable Diffusion's tokenizer (transformers `CLIPTokenizer`, vocab + merges with the
`</w>` end-of-word suffix), so the toy world exercises the paper-scale code path; but the merges are learned
here from the toy grammar, so nothing is downloaded and every grammar word is a single token. Any other text
still tokenizes, into byte-level pieces.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible map of the 256 byte values to printable unicode characters, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Greedy BPE on the word list (each word counted once) until every word is one symbol.

    Ties between equally frequent pairs break lexicographically, so the result is deterministic.
    """
    sequences = [[*w[:-1], w[-1] + "</w>"] for w in sorted(set(words)) if w]
    merges: list[tuple[str, str]] = []
    while True:
        counts = Counter(pair for seq in sequences for pair in pairwise(seq))
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for i, seq in enumerate(sequences):
            merged, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and (seq[j], seq[j + 1]) == best:
                    merged.append(seq[j] + seq[j + 1])
                    j += 2
                else:
                    merged.append(seq[j])
                    j += 1
            sequences[i] = merged


def build_clip_tokenizer(words: list[str], max_length: int) -> CLIPTokenizer:
    """CLIP tokenizer whose vocabulary is the 512 byte symbols, the learned merges and the two specials."""
    for w in words:
        if not w.isascii() or not w.isalpha() or w != w.lower():
            raise ValueError(f"tokenizer words must be lower-case ASCII letters, got {w!r}")
    symbols = byte_symbols()
    merges = learn_merges(words)
    tokens = symbols + [s + "</w>" for s in symbols] + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
