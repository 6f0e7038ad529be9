"""Split a segment's files into work units of ``chunk_rows`` rows, in plan order.

Unit ``u`` is rows ``[u * chunk_rows, (u + 1) * chunk_rows)`` of the segment's files laid end to
end (version added, then path, then row). The split depends on the log only, so a re-run of the
same segment makes the same units and names the same transactions; thousands of small files
share units (one commit per table per unit, not per file), and a large file is cut across several
units. k new rows make ceil(k / chunk_rows) units.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from itertools import accumulate

from pipelines.backfill.files import WorkFile
from pipelines.backfill.read import Slice


class Units:
    """The units of one segment: counts, offsets, and each unit's slices on demand."""

    def __init__(self, files: Sequence[WorkFile], chunk_rows: int) -> None:
        self.files = list(files)
        self.chunk_rows = chunk_rows
        # offsets[i]: rows before file i; O(files) memory, never O(rows).
        self.offsets = [0, *accumulate(f.rows for f in self.files)]
        self.rows = self.offsets[-1]

    def __len__(self) -> int:
        return -(-self.rows // self.chunk_rows)

    def unit_of(self, file_index: int, row: int) -> int:
        return (self.offsets[file_index] + row) // self.chunk_rows

    def slices(self, unit: int) -> list[Slice]:
        lo, hi = unit * self.chunk_rows, min(self.rows, (unit + 1) * self.chunk_rows)
        out = []
        i = bisect.bisect_right(self.offsets, lo) - 1
        while i < len(self.files) and self.offsets[i] < hi:
            start = max(lo, self.offsets[i]) - self.offsets[i]
            stop = min(hi, self.offsets[i + 1]) - self.offsets[i]
            if stop > start:
                out.append(Slice(self.files[i], start, stop))
            i += 1
        return out

    def __iter__(self) -> Iterator[list[Slice]]:
        for u in range(len(self)):
            yield self.slices(u)
