"""Integer codes for text columns: matching and classification compare ints, not strings.

Both functions take two text columns (the report's and the ledger's) and give each row an
integer code, the same code for the same text on either side and a different code for
different text; NA is ``-1``. Codes are not dense (a code may be unused); being small
non-negative ints, they index lookup arrays of ``max + 1`` entries.

- ``joint_codes``, for keys (a distinct value per row: transfer ids, provider tx ids).
  Hashing a million strings twice (pandas' ``factorize``, ``merge``, ``isin``) cost about
  0.6 s at a million rows a side. Here each string's bytes become a few 64-bit words (no
  per-row Python work; the byte length in the spare top byte), the words are mixed into
  one hash, and two radix passes (numpy's stable sort of 16-bit digits, linear; a
  comparison sort of 64-bit values cost twice as much) put equal hashes next to each
  other; a run of equal hashes is one code. Equal hashes of *different* strings are
  caught by comparing the words themselves, and those rows are coded again exactly. Text
  longer than ``MAX_KEY_BYTES`` bytes, or a column not stored in Arrow, goes to pandas'
  ``factorize`` (exact, slower).
- ``value_codes``, for columns with few distinct values (currency, direction, player):
  each side is dictionary-encoded by Arrow (``dictionary_codes``) and the two small
  vocabularies are joined (``shared_label_codes``; a caller holding each side's
  dictionary codes already joins those).
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
    """Joint codes by pandas' ``factorize`` (NA: -1). Exact but for one pandas limit: its hash table for
    Python-stored text ends a text at NUL ("a\\0" codes as "a"); Arrow-stored text is coded exactly."""
    both = pd.concat([pd.Series(a).reset_index(drop=True), pd.Series(b).reset_index(drop=True)], ignore_index=True)
    codes = np.asarray(both.factorize()[0], dtype=np.int64)
    return codes[:len(a)], codes[len(a):]


def value_codes(a: Any, b: Any) -> Codes:
    """Joint codes for low-cardinality text columns (``dictionary_codes`` of each side, the two
    small vocabularies then joined)."""
    (left, left_labels), (right, right_labels) = dictionary_codes(a), dictionary_codes(b)
    left_shared, right_shared = shared_label_codes(left_labels, right_labels)
    return left_shared[left], right_shared[right]


def shared_label_codes(left: Any, right: Any) -> Codes:
    """One code per label of two small vocabularies (``dictionary_codes`` labels), the same code for the
    same label on either side (NA: -1): a side's row codes are then ``shared[codes]``."""
    labels = pd.concat([pd.Series(left), pd.Series(right)], ignore_index=True)
    shared = np.asarray(labels.factorize()[0], dtype=np.int64)
    return shared[:len(left)], shared[len(left):]


def dictionary_codes(values: Any) -> tuple[np.ndarray, Any]:
    """``(codes, labels)`` of one low-cardinality text column: ``labels[codes[i]]`` is row i's value
    (NA included, as a label of its own); one Arrow dictionary encoding, codes as Arrow gives them."""
    array = arrow_strings(values)
    if array is None:
        codes, labels = pd.factorize(values, use_na_sentinel=False)
        return np.asarray(codes, dtype=np.int64), pd.array(labels, dtype=values.dtype)
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(array)
    labels = pd.array(encoded.dictionary, dtype=values.dtype)
    if not encoded.indices.null_count:
        return np.asarray(encoded.indices), labels
    codes = np.asarray(encoded.indices.fill_null(len(labels)))
    return codes, pd.array([*labels, pd.NA], dtype=values.dtype)


def joint_codes(a: Any, b: Any, *, hash_words: Callable[[np.ndarray], np.ndarray] | None = None) -> Codes:
    """Exact joint codes of two key columns (see the module docstring); ``hash_words`` is for tests."""
    left, right = arrow_strings(a), arrow_strings(b)
    if left is None or right is None:
        return factorized(a, b)
    sides = [StringBytes(left), StringBytes(right)]
    longest = max(side.longest for side in sides)
    if longest > MAX_KEY_BYTES:
        return factorized(a, b)
    width = longest // 8 + 1  # the last byte of the last word is never text: it holds the length
    words = np.concatenate([side.words(width) for side in sides], axis=1)
    valid = np.concatenate([side.valid for side in sides])
    codes = _sorted_codes(words, valid, hash_words or _mix)
    return codes[:len(left)], codes[len(left):]


class StringBytes:
    """The bytes of an Arrow string array: offsets, data, valid rows and their byte lengths."""

    def __init__(self, array: Any) -> None:
        import pyarrow as pa

        count = len(array)
        offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
        buffers = array.buffers()
        offsets = np.frombuffer(buffers[1], dtype=offset_type)
        self.offsets = offsets[array.offset:array.offset + count + 1].astype(np.int64)
        self.data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        self.valid = np.asarray(array.is_valid(), dtype=bool) if array.null_count else np.ones(count, dtype=bool)
        self.stored = np.diff(self.offsets)
        self.lengths = np.where(self.valid, self.stored, 0)
        self.longest = int(self.lengths.max(initial=0))

    def words(self, width: int) -> np.ndarray:
        """Each valid string's UTF-8 bytes zero-padded into ``width`` little-endian 64-bit words, its
        byte length in the top byte of the last word (so "a" and "a\\0" differ); word-major
        (``words[j]`` is every row's word j, contiguous). Invalid rows are zeros."""
        words = np.zeros((width, len(self.lengths)), dtype="<u8")
        longest, stored, offsets = self.longest, self.stored, self.offsets
        if longest and bool(((stored == longest) | (stored == 0)).all()):  # one length: the bytes are one block
            _place_block(words, stored == longest, self.data[offsets[0]:offsets[-1]], longest)
        else:
            for length in np.unique(self.lengths[self.lengths > 0]).tolist():
                rows = np.flatnonzero(self.lengths == length)
                for first in range(0, len(rows), _GATHER_ROWS):
                    chunk = rows[first:first + _GATHER_ROWS]
                    _place(words, chunk, self.data[offsets[chunk, None] + np.arange(length)])
        words[-1] |= self.lengths.astype("<u8") << np.uint64(56)
        return words


def _place(words: np.ndarray, rows: np.ndarray, block: np.ndarray) -> None:
    """Write ``block`` (one row of bytes per selected row, all as long) into the selected rows' words."""
    padded = np.zeros((len(block), len(words) * 8), dtype=np.uint8)
    padded[:, :block.shape[1]] = block
    for index, column in enumerate(padded.view("<u8").T):
        words[index][rows] = column


def _place_block(words: np.ndarray, rows: np.ndarray, data: np.ndarray, length: int) -> None:
    """Write ``data`` (the bytes of the selected rows, each ``length`` long, back to back) into their words:
    each word read straight from the bytes (a strided view, 8 bytes every ``length``; the bytes past a
    text masked off), without a byte matrix."""
    count = len(data) // length
    padded = np.zeros(len(data) + 8, dtype=np.uint8)  # the last text's last word reads up to 7 bytes past it
    padded[:len(data)] = data
    for index in range(min(len(words), -(-length // 8))):
        start = 8 * index
        column = np.ndarray((count,), dtype="<u8", buffer=padded, offset=start, strides=(length,))
        column = column & np.uint64((1 << 8 * min(8, length - start)) - 1)
        if count == len(rows):
            words[index] = column
        else:
            words[index][rows] = column


def _mix(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of words (multiply-xorshift per word; wraps modulo 2**64)."""
    hashed = np.full(words.shape[1], _SEED, dtype=np.uint64)
    shifted = np.empty_like(hashed)  # one scratch array: a fresh one per word cost page faults
    for column in words:
        hashed ^= column
        hashed *= _MULTIPLIER
        hashed ^= np.right_shift(hashed, np.uint64(31), out=shifted)
    return hashed


def _sorted_codes(words: np.ndarray, valid: np.ndarray, hash_words: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """One code per distinct row of ``words`` among the valid rows (-1 for the others).

    The valid rows are put in order of the low 32 bits of their hash (``_hash_order``: two radix
    passes, linear, where a comparison sort of 64-bit values took most of the time); a run of
    equal values is one code. Rows of one run whose words differ (a 32-bit clash: some hundreds
    among a million distinct keys) are coded again exactly, by their words."""
    count = words.shape[1]
    codes = np.full(count, -1, dtype=np.int64)
    rows = np.flatnonzero(valid)
    if not len(rows):
        return codes
    hashed = hash_words(words)
    rows, low = _hash_order(rows, hashed if len(rows) == count else hashed[rows])
    starts = np.ones(len(rows), dtype=bool)
    np.not_equal(low[1:], low[:-1], out=starts[1:])
    group = np.cumsum(starts, dtype=np.int64) - 1
    codes[rows] = group
    pairs = np.flatnonzero(~starts[1:])  # only rows under the same hash as the row before need checking
    first, second = rows[pairs], rows[pairs + 1]
    clash = np.zeros(len(pairs), dtype=bool)
    for column in words:
        clash |= column[first] != column[second]
    if clash.any():  # two different strings under one hash: code those groups' rows exactly
        clashed_group = np.zeros(int(group[-1]) + 1, dtype=bool)
        clashed_group[group[pairs[clash] + 1]] = True
        clashed = rows[clashed_group[group]]
        _, inverse = np.unique(words[:, clashed].T, axis=0, return_inverse=True)
        codes[clashed] = int(group[-1]) + 1 + inverse.reshape(-1)
    return codes


def _hash_order(rows: np.ndarray, hashed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (positions below 2**32) and the low 32 bits of their ``hashed`` values (consumed), in order
    of those bits: each row packed with its bits into one 64-bit value, moved by a stable sort of the
    low 16 bits, then of the high 16 bits (numpy's stable sort of 16-bit integers is a radix sort:
    linear). Worked in place where it can: fresh arrays of millions of rows cost page faults."""
    order = np.argsort(hashed.astype(np.uint16), kind="stable")  # the cast keeps the low 16 bits
    packed = np.left_shift(hashed, np.uint64(32), out=hashed)
    packed |= rows.view(np.uint64)
    moved = np.take(packed, order)
    np.right_shift(moved, np.uint64(48), out=packed)
    order = np.argsort(packed.astype(np.uint16), kind="stable")
    np.take(moved, order, out=packed)
    np.right_shift(packed, np.uint64(32), out=moved)
    packed &= np.uint64(0xFFFFFFFF)
    return packed.view(np.int64), moved
