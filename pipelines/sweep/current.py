"""The current decision of each (content_id, market, policy_id): see :mod:`pipelines.current`."""

from pipelines.current import KEY, current_decisions

__all__ = ["KEY", "current_decisions"]
