"""Names of the default policies and of the model heads that score them.

A head is what the model predicts about the content alone; a policy is what the pack
decides from a head's score and the item's metadata. They share names except for
cross-border data transfer, whose head (``personal_data``) detects personal data and whose
policy fires only when the item is distributed outside its origin's transfer zone.
"""

from __future__ import annotations

DEFAULT_POLICIES: tuple[str, ...] = (
    "child_safety", "misinformation", "hate", "violence", "scams", "self_harm", "cross_border_data",
)  # fmt: skip
DEFAULT_HEADS: tuple[str, ...] = (
    "child_safety", "misinformation", "hate", "violence", "scams", "self_harm", "personal_data",
)  # fmt: skip
# ground_truth holds one row per (content_id, target) for every policy AND every head, so
# `personal_data` (content-level truth, what the model learns) sits beside
# `cross_border_data` (policy-level truth, what an audit measures).
GROUND_TRUTH_TARGETS: tuple[str, ...] = (*DEFAULT_POLICIES, "personal_data")
