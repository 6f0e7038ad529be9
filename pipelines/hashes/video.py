"""vPDQ's rule for videos: an item matches when enough of its keyframes match.

A video is hashed as one PDQ hash per keyframe (frame index = position). vPDQ drops frames of
quality below 50 on both sides, then calls a query video a match when the share of its remaining
frames that lie within the distance threshold of some bank frame is at least 80% (vPDQ's default
``query_match_threshold_pct``; its index-side share defaults to 0, i.e. unused, as here).
Frames must first be matched with ``matcher.match_hashes`` (quality filter included); this module
turns frame matches into item matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.hashes.matcher import MIN_QUALITY, Matches

MIN_FRAME_SHARE = 0.8
"""Share of an item's good-quality frames that must match (vPDQ's default, 80%)."""


@dataclass(frozen=True)
class ItemMatches:
    """Items whose matched-frame share reached ``min_share``, sorted by item."""

    item: np.ndarray
    """int64 item index."""
    matched_frames: np.ndarray
    """int64 frames of the item within the threshold of some bank entry."""
    frames: np.ndarray
    """int64 frames of the item of quality >= min_quality (the denominator)."""
    best_distance: np.ndarray
    """int32 smallest distance of any of the item's frames to any bank entry."""

    @property
    def share(self) -> np.ndarray:
        return self.matched_frames / self.frames


def item_matches(
    frame_item: np.ndarray,
    frame_quality: np.ndarray,
    frame_matches: Matches,
    *,
    min_share: float = MIN_FRAME_SHARE,
    min_quality: int = MIN_QUALITY,
) -> ItemMatches:
    """Apply vPDQ's rule.

    Args:
        frame_item: int ``[n_frames]``: the item (video or image) each stored frame belongs to.
        frame_quality: int ``[n_frames]``: PDQ quality of each frame.
        frame_matches: ``match_hashes`` over the same frame rows (``stored`` indexes frames).
        min_share: in (0, 1]; an image (one frame) matches when its frame does.
        min_quality: frames below it count neither as matched nor in the denominator.
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    items = np.asarray(frame_item, dtype=np.int64)
    quality = np.asarray(frame_quality)
    if items.shape != quality.shape or items.ndim != 1:
        raise ValueError(f"frame_item and frame_quality must be [n_frames], got {items.shape} and {quality.shape}")
    good = quality >= min_quality
    matched_frame = np.zeros(items.shape[0], dtype=bool)
    best = np.full(items.shape[0], np.iinfo(np.int32).max, dtype=np.int32)
    if len(frame_matches):
        matched_frame[frame_matches.stored] = True
        np.minimum.at(best, frame_matches.stored, frame_matches.distance)
    matched_frame &= good
    uniq, inverse = np.unique(items, return_inverse=True)
    frames = np.bincount(inverse, weights=good, minlength=uniq.shape[0]).astype(np.int64)
    matched = np.bincount(inverse, weights=matched_frame, minlength=uniq.shape[0]).astype(np.int64)
    best_item = np.full(uniq.shape[0], np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(best_item, inverse[matched_frame], best[matched_frame])
    # A tiny tolerance so that 4 of 5 frames is 80% despite floating point.
    hit = (frames > 0) & (matched >= min_share * frames - 1e-9)
    return ItemMatches(uniq[hit], matched[hit], frames[hit], best_item[hit])
