"""Sort-and-pack micro-batching: keep padding in the text tower small.

Rows arrive in any order with heavy-tailed lengths; padding a batch to its longest row then
wastes most of the compute (81% measured for MiniLM in arrival order). Sorting by length and
closing a micro-batch when its padded size would pass a token budget keeps padding low and
the work per micro-batch even.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PaddingStats:
    """Real and padded token counts over the micro-batches a model ran (for reports)."""

    real_tokens: int = 0
    padded_tokens: int = 0

    @property
    def padding_share(self) -> float:
        """Share of the tokens the tower computed that were padding."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    def add(self, lengths: list[int]) -> None:
        if lengths:
            self.real_tokens += sum(lengths)
            self.padded_tokens += max(lengths) * len(lengths)


def pack_by_tokens(
    lengths: list[int], *, token_budget: int, max_rows: int, max_padding: float = 0.10
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into micro-batches, shortest first.

    A micro-batch holds at most ``max_rows`` rows and at most ``token_budget`` padded tokens
    (rows x longest row), and is closed before a row would push its padding share above
    ``max_padding``; a single row longer than the budget gets a micro-batch of its own.
    """
    if token_budget < 1 or max_rows < 1 or not 0.0 <= max_padding < 1.0:
        raise ValueError(
            f"need token_budget >= 1, max_rows >= 1, 0 <= max_padding < 1; got {token_budget}, {max_rows}, {max_padding}"
        )
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        # Sorted ascending: the new row is the longest, so it sets the padded length.
        n, longest = len(current) + 1, lengths[i]
        if current and (
            n > max_rows or n * longest > token_budget or 1.0 - (real + longest) / (n * longest) > max_padding
        ):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches
