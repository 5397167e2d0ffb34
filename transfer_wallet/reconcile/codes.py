"""Integer codes for text columns: matching and classification compare ints, not strings.

Both functions take two text columns (the report's and the ledger's) and give each row an
``int64`` code, the same code for the same text on either side and a different code for
different text; NA is ``-1``. Codes are not dense (a code may be unused); being small non-negative
ints, they index lookup arrays of ``max + 1`` entries.

- ``joint_codes``, for keys (a distinct value per row: transfer ids, provider tx ids).
  Hashing a million strings twice (pandas' ``factorize``, ``merge``, ``isin``) cost about
  0.6 s at a million rows a side. Here each string's bytes become a few 64-bit words (no
  per-row Python work), the words are mixed into one hash, and one ``numpy.sort`` of
  ``hash | row`` values (vectorised, SIMD) puts equal hashes next to each other; a run of
  equal hashes is one code. Equal hashes of *different* strings (rare) are caught by
  comparing the words themselves, and those rows are coded again exactly.
  Text longer than ``MAX_KEY_BYTES`` bytes, or a column not stored in Arrow, goes to
  pandas' ``factorize`` (exact, slower).
- ``value_codes``, for columns with few distinct values (currency, direction, status,
  player): each side is dictionary-encoded by Arrow and the two small dictionaries are
  joined.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

#: Longer text keys are coded by pandas instead (the word matrix grows with the longest key).
MAX_KEY_BYTES = 64
#: Rows gathered into the word matrix at a time (bounds the index temporaries).
_GATHER_ROWS = 1 << 18
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_SEED = np.uint64(0xC2B2AE3D27D4EB4F)

Codes = tuple[np.ndarray, np.ndarray]


def arrow_strings(values: Any) -> Any | None:
    """The Arrow array (one chunk) behind an Arrow-stored pandas text column; None for other storage."""
    dtype = getattr(values, "dtype", None)
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa

    array = pa.array(values.array if isinstance(values, pd.Series) else values)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def factorized(a: Any, b: Any) -> Codes:
    """Joint codes by pandas' ``factorize`` (exact for any dtype; NA: -1)."""
    both = pd.concat([pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)], ignore_index=True)
    codes = np.asarray(both.factorize()[0], dtype=np.int64)
    return codes[:len(a)], codes[len(a):]


def value_codes(a: Any, b: Any) -> Codes:
    """Joint codes for low-cardinality text columns (Arrow dictionary encoding of each side)."""
    left, right = arrow_strings(a), arrow_strings(b)
    if left is None or right is None:
        return factorized(a, b)
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = [pc.dictionary_encode(left), pc.dictionary_encode(right)]
    vocabulary = pa.concat_arrays([e.dictionary.cast(pa.large_string()) for e in encoded])
    shared = np.asarray(pd.Series(pd.array(vocabulary, dtype=a.dtype)).factorize()[0], dtype=np.int64)
    split = len(encoded[0].dictionary)
    return _mapped(encoded[0].indices, shared[:split]), _mapped(encoded[1].indices, shared[split:])


def _mapped(indices: Any, mapping: np.ndarray) -> np.ndarray:
    positions = np.asarray(indices.fill_null(-1), dtype=np.int64)
    return np.where(positions >= 0, mapping[np.maximum(positions, 0)] if len(mapping) else -1, -1)


def joint_codes(a: Any, b: Any, *, hash_words: Callable[[np.ndarray], np.ndarray] | None = None) -> Codes:
    """Exact joint codes of two key columns (see the module docstring); ``hash_words`` is for tests."""
    left, right = arrow_strings(a), arrow_strings(b)
    if left is None or right is None:
        return factorized(a, b)
    sides = [_words(left), _words(right)]
    if sides[0] is None or sides[1] is None:
        return factorized(a, b)
    width = max(sides[0][0].shape[1], sides[1][0].shape[1])
    words = np.concatenate([_widened(w, width) for w, _ in sides])
    valid = np.concatenate([v for _, v in sides])
    codes = _sorted_codes(words, valid, hash_words or _mix)
    return codes[:len(left)], codes[len(left):]


def _widened(words: np.ndarray, width: int) -> np.ndarray:
    """``words`` with zero words inserted before the length column up to ``width`` columns."""
    if words.shape[1] == width:
        return words
    wide = np.zeros((len(words), width), dtype=np.uint64)
    wide[:, :words.shape[1] - 1], wide[:, -1] = words[:, :-1], words[:, -1]
    return wide


def _words(array: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(words, valid)``: each string's UTF-8 bytes zero-padded into 64-bit words, its byte length
    as the last word (so "a" and "a\\0" differ); None when a string is longer than ``MAX_KEY_BYTES``."""
    import pyarrow as pa

    count = len(array)
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[array.offset:array.offset + count + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    valid = np.asarray(array.is_valid(), dtype=bool) if array.null_count else np.ones(count, dtype=bool)
    lengths = np.where(valid, np.diff(offsets), 0)
    longest = int(lengths.max(initial=0))
    if longest > MAX_KEY_BYTES:
        return None
    width = max(1, -(-longest // 8))
    matrix = np.zeros((count, width * 8 + 8), dtype=np.uint8)
    if count and bool((lengths == longest).all()):  # every row as long: the bytes are one block
        matrix[:, :longest] = data[offsets[0]:offsets[0] + count * longest].reshape(count, longest)
    else:
        for length in np.unique(lengths[lengths > 0]).tolist():
            rows = np.flatnonzero(lengths == length)
            for first in range(0, len(rows), _GATHER_ROWS):
                chunk = rows[first:first + _GATHER_ROWS]
                matrix[chunk, :length] = data[offsets[chunk, None] + np.arange(length)]
    words = matrix.view(np.uint64)
    words[:, -1] = lengths.astype(np.uint64)
    return words, valid


def _mix(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of words (multiply-xorshift per word; wraps modulo 2**64)."""
    hashed = np.full(len(words), _SEED, dtype=np.uint64)
    for column in words.T:
        hashed ^= column
        hashed *= _MULTIPLIER
        hashed ^= hashed >> np.uint64(31)
    return hashed


def _sorted_codes(words: np.ndarray, valid: np.ndarray, hash_words: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """One code per distinct row of ``words`` among the valid rows (-1 for the others)."""
    count = len(words)
    codes = np.full(count, -1, dtype=np.int64)
    if not valid.any():
        return codes
    bits = max(1, (count - 1).bit_length())
    row_mask = np.uint64((1 << bits) - 1)
    keys = (hash_words(words) & ~row_mask) | np.arange(count, dtype=np.uint64)
    keys = np.sort(keys[valid])
    rows = (keys & row_mask).astype(np.int64)
    hashes = keys & ~row_mask
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = hashes[1:] != hashes[:-1]
    group = np.cumsum(starts) - 1
    codes[rows] = group
    ordered = words[rows]
    clash = ~starts[1:] & (ordered[1:] != ordered[:-1]).any(axis=1)
    if clash.any():  # two different strings under one hash: code those groups' rows exactly
        clashed = np.isin(group, group[1:][clash])
        _, inverse = np.unique(ordered[clashed], axis=0, return_inverse=True)
        codes[rows[clashed]] = int(group[-1]) + 1 + inverse.reshape(-1)
    return codes
