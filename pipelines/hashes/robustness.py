"""Measured robustness of PDQ matching on generated known media (the table in docs/hashes.md).

For each near-duplicate transform: recall at the threshold when the copy's own hash is matched
("plain") and when any of its 8 dihedral hashes may match ("dihedral", how mirrored copies are
found), with the distances seen. For look-alikes: how many match any known image, both ways.

    python -m pipelines.hashes.robustness [--seed 0] [--known 300] [--look-alikes 2000]

prints the table as one JSON line.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np

from pipelines.generate.known_media import KnownMedia, make_known_media
from pipelines.hashes.codec import as_array
from pipelines.hashes.matcher import DEFAULT_THRESHOLD, MIN_QUALITY, match_dihedral, match_hashes
from pipelines.hashes.pdq import decode, hash_bytes, hash_dihedral


@dataclass(frozen=True)
class TransformRow:
    """Recall of one transform (or one recolour kind) at the threshold."""

    transform: str
    copies: int
    below_quality: int
    """Copies whose PDQ quality fell below 50: never matched, counted as misses."""
    recall_plain: float
    recall_dihedral: float
    median_distance: float
    """Median distance of the copy's own hash to its known image."""
    max_distance_dihedral: int
    """Largest of the per-copy smallest distances over the 8 dihedral hashes."""


@dataclass(frozen=True)
class Robustness:
    threshold: int
    known: int
    min_known_quality: int
    rows: tuple[TransformRow, ...]
    look_alikes: int
    look_alike_matches_plain: int
    look_alike_matches_dihedral: int
    look_alike_min_distance_dihedral: int


def _dihedral_array(images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 8, 32] dihedral hashes and int [n] quality of encoded images."""
    variants, quality = [], []
    for data in images:
        hashes = hash_dihedral(decode(data))
        variants.append(as_array(h.hash for h in hashes))
        quality.append(hashes[0].quality)
    return np.stack(variants), np.asarray(quality)


def _best_distance(
    matches_stored: np.ndarray, matches_bank: np.ndarray, dist: np.ndarray, want: np.ndarray
) -> np.ndarray:
    """Per copy, the distance to its own known image (257 when not within the search radius)."""
    best = np.full(want.shape[0], 257, dtype=np.int64)
    own = matches_bank == want[matches_stored]
    np.minimum.at(best, matches_stored[own], dist[own])
    return best


def measure(media: KnownMedia, *, threshold: int = DEFAULT_THRESHOLD) -> Robustness:
    """Hash everything in ``media`` and measure recall per transform and look-alike matches."""
    known = [hash_bytes(k.data) for k in media.known]
    bank = as_array(h.hash for h in known)
    dups = list(media.near_duplicates)
    want = np.asarray([d.known for d in dups], dtype=np.int64)
    variants, quality = _dihedral_array([d.data for d in dups])
    # Distances to every known image (threshold 256) so that medians and maxima are exact.
    plain = match_hashes(variants[:, 0], bank, threshold=256, stored_quality=quality)
    dihedral = match_dihedral(variants, bank, threshold=256, quality=quality)
    plain_best = _best_distance(plain.stored, plain.bank, plain.distance, want)
    dihedral_best = _best_distance(dihedral.stored, dihedral.bank, dihedral.distance, want)

    groups: dict[str, list[int]] = {}
    for n, d in enumerate(dups):
        groups.setdefault(d.transform, []).append(n)
        if d.transform == "recolour":
            groups.setdefault(f"recolour:{d.detail}", []).append(n)
    rows = []
    for name, members in groups.items():
        idx = np.asarray(members)
        rows.append(
            TransformRow(
                transform=name,
                copies=len(members),
                below_quality=int(np.sum(quality[idx] < MIN_QUALITY)),
                recall_plain=round(float(np.mean(plain_best[idx] <= threshold)), 4),
                recall_dihedral=round(float(np.mean(dihedral_best[idx] <= threshold)), 4),
                median_distance=float(np.median(plain_best[idx])),
                max_distance_dihedral=int(dihedral_best[idx].max()),
            )
        )

    look_variants, look_quality = _dihedral_array([la.data for la in media.look_alikes])
    look_plain = match_hashes(look_variants[:, 0], bank, threshold=threshold, stored_quality=look_quality)
    look_all = match_dihedral(look_variants, bank, threshold=256, quality=look_quality)
    look_dihedral = int(np.unique(look_all.stored[look_all.distance <= threshold]).shape[0])
    return Robustness(
        threshold=threshold,
        known=len(known),
        min_known_quality=min((h.quality for h in known), default=0),
        rows=tuple(sorted(rows, key=lambda r: r.transform)),
        look_alikes=len(media.look_alikes),
        look_alike_matches_plain=int(np.unique(look_plain.stored).shape[0]),
        look_alike_matches_dihedral=look_dihedral,
        look_alike_min_distance_dihedral=int(look_all.distance.min()) if len(look_all) else 257,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known", type=int, default=300)
    parser.add_argument("--per-transform", type=int, default=2)
    parser.add_argument("--look-alikes", type=int, default=2000)
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    media = make_known_media(
        args.seed, n_known=args.known, per_transform=args.per_transform, n_look_alikes=args.look_alikes
    )
    print(json.dumps(asdict(measure(media, threshold=args.threshold))))


if __name__ == "__main__":
    main()
