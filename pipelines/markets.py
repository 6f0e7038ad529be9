"""Country codes, market groups and data-transfer zones.

A *market* is one ISO 3166-1 alpha-2 country code where an item is distributed. Packs may
name the groups ``EU``, ``EEA`` and ``GLOBAL``; they expand to country codes here and only
here, so the decision function, the sweep and the reports agree on membership.
"""

from __future__ import annotations

# The 27 EU member states as the DSA Transparency Database spells them (GR, not EL).
EU: tuple[str, ...] = (
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
)  # fmt: skip
# EEA = EU + Iceland, Liechtenstein, Norway: the 30 codes of `territorial_scope`.
EEA: tuple[str, ...] = (*EU, "IS", "LI", "NO")
# Markets outside the EEA that the generator and the default pack know.
OTHER: tuple[str, ...] = ("US", "GB", "BR", "IN", "ID", "JP")
ALL_MARKETS: tuple[str, ...] = EEA + OTHER

GROUPS: dict[str, tuple[str, ...]] = {"EU": EU, "EEA": EEA, "GLOBAL": ALL_MARKETS}

# Personal-data transfer zones: moving personal data between two markets of one zone needs
# no transfer mechanism. The EEA is one zone (GDPR Chapter V); the UK has an adequacy
# decision with the EEA, so it shares the zone; every other market is its own zone.
_EEA_ZONE = frozenset(EEA) | {"GB"}


def transfer_zone(country: str) -> frozenset[str]:
    """The set of markets that personal data from ``country`` may reach without a transfer."""
    if country in _EEA_ZONE:
        return _EEA_ZONE
    return frozenset({country})


def expand(name: str) -> tuple[str, ...]:
    """Expand a market group to its member codes; a single country stays itself."""
    if name in GROUPS:
        return GROUPS[name]
    return (name,)


def is_known(name: str) -> bool:
    """Whether ``name`` is a market code or group this project knows."""
    return name in GROUPS or name in ALL_MARKETS


def groups_of(country: str) -> tuple[str, ...]:
    """The groups a country belongs to, for roll-ups in reports."""
    return tuple(g for g, members in GROUPS.items() if country in members)
