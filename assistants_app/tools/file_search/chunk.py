"""Token-window chunking, as OpenAI's vector stores do it.

`{"type": "auto"}` is 800-token windows overlapping by 400; `{"type": "static", "static":
{"max_chunk_size_tokens": N, "chunk_overlap_tokens": M}}` sets them (100 <= N <= 4096,
0 <= M <= N/2). Every chunk's text is an exact slice of the extracted text: offsets are
character offsets, and a window edge that falls inside a multi-byte character widens to include it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import tiktoken
from django.conf import settings

from .extract import ExtractionError

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096


class ChunkingStrategyError(ValueError):
    """An invalid chunking_strategy; `param` names the offending field for a 400 response."""

    def __init__(self, message: str, param: str = "chunking_strategy") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ChunkingParams:
    max_tokens: int
    overlap_tokens: int


AUTO = ChunkingParams(max_tokens=800, overlap_tokens=400)


@dataclass(frozen=True)
class TextChunk:
    ordinal: int
    text: str
    token_count: int
    start_offset: int
    end_offset: int


def parse_chunking_strategy(raw: Mapping[str, Any] | None) -> ChunkingParams:
    """Validate a request's chunking_strategy (None or {} mean auto)."""
    if raw is None or raw == {}:
        return AUTO
    if not isinstance(raw, Mapping):
        raise ChunkingStrategyError("chunking_strategy must be an object.")
    kind = raw.get("type")
    if kind == "auto":
        extra = set(raw) - {"type"}
        if extra:
            raise ChunkingStrategyError(
                f"Unknown parameter for auto chunking: {sorted(extra)[0]}.",
                f"chunking_strategy.{sorted(extra)[0]}",
            )
        return AUTO
    if kind != "static":
        raise ChunkingStrategyError(
            "chunking_strategy.type must be 'auto' or 'static'.", "chunking_strategy.type"
        )
    static = raw.get("static")
    if not isinstance(static, Mapping):
        raise ChunkingStrategyError(
            "chunking_strategy.static is required when type is 'static'.", "chunking_strategy.static"
        )
    size = _int_field(static, "max_chunk_size_tokens")
    overlap = _int_field(static, "chunk_overlap_tokens")
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise ChunkingStrategyError(
            f"max_chunk_size_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {size}.",
            "chunking_strategy.static.max_chunk_size_tokens",
        )
    if overlap < 0 or overlap > size // 2:
        raise ChunkingStrategyError(
            f"chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens ({size // 2}), got {overlap}.",
            "chunking_strategy.static.chunk_overlap_tokens",
        )
    return ChunkingParams(max_tokens=size, overlap_tokens=overlap)


def _int_field(static: Mapping[str, Any], name: str) -> int:
    value = static.get(name)
    # bool is an int subclass; `true` is not a size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ChunkingStrategyError(
            f"chunking_strategy.static.{name} must be an integer.", f"chunking_strategy.static.{name}"
        )
    return value


def chunking_strategy_to_api(params: ChunkingParams) -> dict[str, Any]:
    """The form OpenAI reports on a vector store file (auto is reported as its static values)."""
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": params.max_tokens, "chunk_overlap_tokens": params.overlap_tokens},
    }


@lru_cache(maxsize=4)
def get_encoding(name: str | None = None) -> tiktoken.Encoding:
    return tiktoken.get_encoding(str(name or settings.TOKENIZER_ENCODING))


@lru_cache(maxsize=4)
def _token_byte_lengths(name: str) -> np.ndarray:
    """Byte length of every token id, computed once: a vectorized lookup per document after that."""
    enc = get_encoding(name)
    lengths = np.zeros(enc.n_vocab, dtype=np.int64)
    for token in range(enc.n_vocab):
        try:
            lengths[token] = len(enc.decode_single_token_bytes(token))
        except KeyError:  # ids between the ordinary and the special tokens
            pass
    return lengths


def max_file_tokens() -> int:
    return int(settings.FILE_SEARCH_MAX_FILE_TOKENS)


def chunk_text(text: str, params: ChunkingParams = AUTO) -> list[TextChunk]:
    enc = get_encoding()
    # Special-token strings in a document are ordinary text here.
    tokens = enc.encode_ordinary(text)
    n = len(tokens)
    if n > max_file_tokens():
        raise ExtractionError(
            "invalid_file", f"The file has too many tokens ({n}; the limit is {max_file_tokens()})."
        )
    if n == 0:
        return []

    # Map token boundaries to character offsets via UTF-8 byte positions: the concatenated token
    # bytes are exactly text.encode("utf-8") because BPE is lossless.
    utf8 = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    is_char_start = (utf8 & 0xC0) != 0x80
    starts_before = np.concatenate(([0], np.cumsum(is_char_start, dtype=np.int64)))
    token_lengths = _token_byte_lengths(enc.name)[np.asarray(tokens, dtype=np.int64)]
    byte_at = np.concatenate(([0], np.cumsum(token_lengths)))
    if byte_at[-1] != len(utf8):  # cannot happen for valid str input; fail loudly rather than misalign
        raise ExtractionError("invalid_file", "The text could not be tokenized consistently.")

    def char_start(b: int) -> int:
        # A window starting inside a character starts at that character.
        inside = b < len(utf8) and not is_char_start[b]
        return int(starts_before[b]) - int(inside)

    def char_end(b: int) -> int:
        return int(starts_before[b])

    stride = params.max_tokens - params.overlap_tokens
    chunks: list[TextChunk] = []
    start = 0
    while True:
        end = min(start + params.max_tokens, n)
        cs, ce = char_start(int(byte_at[start])), char_end(int(byte_at[end]))
        piece = text[cs:ce]
        if piece.strip():
            chunks.append(TextChunk(len(chunks), piece, end - start, cs, ce))
        if end >= n:
            return chunks
        start += stride
