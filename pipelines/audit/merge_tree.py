"""The merge tree of a whole-table pass's partials (:func:`pipelines.audit.buckets.map_reduce`).

Partials are merged in groups of :data:`FAN_IN` (partition order), level after level, until at
most FAN_IN are left: the root's inputs, which the caller's process folds. The tree's shape
depends only on the partition count, so Ray and local runs merge alike.

On Ray the groups below the root are folded by a few actors (:class:`GroupFold`, no CPU
reserved) that take each partial as soon as its task is done: the partial leaves the object
store once handed over, instead of waiting there for the rest of its group. Merge tasks given
the group's references would pin every input until the merge ends; the object store then held
a group and a half of partials (500 MB at 5x10^7 rows), and the pages of that high-water mark
showed in the resident memory of every worker that wrote into it (RssShmem: 360-520 MiB per
worker at 5x10^7 rows against 70-100 at 10^7; 190-200 with fold actors: Ray frees objects
about once a second, so the partials of the last second still sit in the store).

An actor's state is not recomputed by Ray when its process dies: the tree then starts over on
merge tasks (:func:`_task_tree`, whose inputs Ray can rebuild from lineage), from new partition
tasks. A pass pays for it only when a fold process dies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)

FAN_IN = 8
"""Partials merged per fold: a fold holds at most this many."""

Combine = Callable[[Iterable[Any]], Any]


def tree_local(parts: Iterator[Any], combine: Combine, root: Combine) -> Any:
    """The tree in this process, holding at most FAN_IN partials: while more than FAN_IN are
    left, ``combine`` folds FAN_IN at a time; ``root`` folds the rest."""
    level: list[Any] = []
    buffer: list[Any] = []
    for part in parts:
        if len(buffer) == FAN_IN:  # another part follows: this buffer is one merge of a level
            level.append(combine(buffer))
            buffer = []
        buffer.append(part)
    if not level:
        return root(buffer)
    level.append(combine(buffer))
    while len(level) > FAN_IN:
        level = [combine(level[i : i + FAN_IN]) for i in range(0, len(level), FAN_IN)]
    return root(level)


def level_sizes(n: int) -> list[int]:
    """The number of inputs at each level of the tree over ``n`` partitions (the last: the root's)."""
    sizes = [n]
    while sizes[-1] > FAN_IN:
        sizes.append(-(-sizes[-1] // FAN_IN))
    return sizes


class GroupFold:
    """A Ray actor folding groups of partials: :meth:`add` hands it one partial (fetched here
    at once, so it leaves the object store), :meth:`fold` merges a group's once all are in.
    Several groups may be open at once, keyed by pass, level and group.

    A partial must not keep views of the object store (numpy arrays unpickled by Ray are views,
    which pin the object as long as they live): :class:`pipelines.audit.partial.Partial` copies
    its arrays out when unpickled.
    """

    def __init__(self) -> None:
        self._parts: dict[Group, dict[int, Any]] = {}

    def begin(self, call: str) -> None:
        """Forget the groups of other passes (one that failed midway left its partials here)."""
        for group in [g for g in self._parts if g[0] != call]:
            del self._parts[group]

    def add(self, group: Group, index: int, part: Any) -> None:
        # ``part`` comes as a reference that Ray resolves before the call and releases when it
        # returns: the object store frees it then (a reference inside a list, fetched here, was
        # released about once a second: 5-6 partials waited in the store).
        self._parts.setdefault(group, {})[index] = part

    def fold(self, group: Group, size: int, combine: Combine, adds: list[Any]) -> Any:
        import ray

        parts = self._parts.pop(group, {})
        # A partition that failed failed its add (Ray passes the error on): raised here, with
        # its type (a bad input stays a bad input for the caller).
        ray.get(adds)
        if sorted(parts) != list(range(size)):  # cannot happen: every add precedes the fold
            raise RuntimeError(f"merge group {group}: got parts {sorted(parts)} of {size}")
        return combine(parts.pop(i) for i in range(size))


Group = tuple[str, int, int]
"""A group of the tree: (pass, level, group)."""

_POOLS: dict[tuple[str, int], list[Any]] = {}
"""Fold actors kept for the next pass of this driver, per Ray job and pool size: a new actor
process takes about 2 s to start on a busy node (the partials meanwhile wait in the store)."""


def _pool(size: int) -> list[Any]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    key = _pool_key(size)
    if key not in _POOLS:
        # No CPU reserved: a fold actor waits for partials most of the time, and its folds are
        # short. Not restarted: its state would be lost anyway (tree_on_ray starts over).
        actor = ray.remote(num_cpus=0, max_restarts=0)(GroupFold)
        # Spread over the nodes that run tasks: an actor reserving no CPU could otherwise land
        # on a head node kept free of work (``ray start --head --num-cpus 0``), often a small one.
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        pool = []
        for i in range(size):
            where = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True) if nodes else "DEFAULT"
            pool.append(actor.options(scheduling_strategy=where).remote())
        _POOLS[key] = pool
    return _POOLS[key]


def _pool_key(size: int) -> tuple[str, int]:
    import ray

    return ray.get_runtime_context().get_job_id(), size


def tree_on_ray(refs: list[Any], combine: Combine, root: Combine, resubmit: Callable[[], list[Any]]) -> Iterator[Any]:
    """The tree on Ray, run when the caller asks for the root (one item: the root's fold).

    ``refs``: the partitions' result references in partition order (emptied: each is then held
    only until its fold process takes it); ``resubmit``: runs the partitions again (new
    references), for the start over on merge tasks when a fold process died.
    """
    import ray
    from ray.exceptions import RayActorError

    sizes = level_sizes(len(refs))
    if len(sizes) == 1:
        yield root(fetch_early(refs))
        return
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # A fold merges FAN_IN partials in about the time one partition takes: one actor per four
    # cores keeps up with the partitions (measured on 2 cores: 0.6 s per fold of 8, 0.7 s per
    # 2 M-row partition).
    size = max(1, math.ceil(cpus / 4))
    try:
        top = _fold_on_actors(refs, combine, sizes, _pool(size))
        merged = root(fetch_early(top))
    except RayActorError as exc:
        log.warning("a merge process died (%s): merging again on merge tasks", exc)
        _POOLS.pop(_pool_key(size), None)
        merged = None
    if merged is None:
        yield from _task_tree(resubmit(), combine, root)
    else:
        yield merged


def _fold_on_actors(refs: list[Any], combine: Combine, sizes: Sequence[int], pool: list[Any]) -> list[Any]:
    """Hand every partial below the root to a fold actor as soon as it is done, and each group's
    fold to the next level; returns the root's input references (fold results)."""
    import uuid

    call = uuid.uuid4().hex
    for fold_actor in pool:
        fold_actor.begin.remote(call)
    levels: list[list[Any]] = [list(refs)] + [[None] * n for n in sizes[1:]]
    refs.clear()
    adds: list[list[list[Any]]] = [[[] for _ in range(n)] for n in sizes[1:]]  # per group, its add calls
    waiting = {ref: (0, i) for i, ref in enumerate(levels[0])}
    while waiting:
        done = _done(list(waiting), fetch_local=False)
        for ref in done:
            lv, i = waiting.pop(ref)
            g = i // FAN_IN
            fold_actor = pool[g % len(pool)]
            adds[lv][g].append(fold_actor.add.remote((call, lv, g), i % FAN_IN, ref))
            levels[lv][i] = None  # the fold actor holds it now
            size = min(FAN_IN, sizes[lv] - g * FAN_IN)
            if len(adds[lv][g]) == size:
                out = fold_actor.fold.remote((call, lv, g), size, combine, adds[lv][g])
                adds[lv][g] = []
                levels[lv + 1][g] = out
                if lv + 1 < len(sizes) - 1:
                    waiting[out] = (lv + 1, g)
        ref, done = None, []  # hold no partial here: the fold actors have them
    return levels[-1]


def fetch_early(refs: list[Any]) -> Iterator[Any]:
    """The results of ``refs`` in order, each fetched as soon as its task is done (``refs``: at
    most FAN_IN, emptied as they are fetched).

    A partial that finishes before an earlier one (a costly range runs first and ends last) leaves
    the object store at once instead of waiting there for its turn, and this process unpacks it
    while the pass still runs instead of after it (measured: the 10^7-row audit's costliest range
    ends last, with the four partials that finished before it still to unpack).
    """
    import ray

    held: dict[int, Any] = {}
    for i in range(len(refs)):
        while i not in held:
            waiting = [r for r in refs if r is not None]
            done = _done(waiting, fetch_local=True)
            for j, ref in enumerate(refs):
                if ref is not None and ref in done:
                    held[j] = ray.get(ref)
                    refs[j] = None  # the last reference: the object store frees it
            del waiting, done
        yield held.pop(i)


def _done(refs: list[Any], *, fetch_local: bool) -> list[Any]:
    """Every one of ``refs`` whose task is done, once one is (waits for the first)."""
    import ray

    ray.wait(refs, num_returns=1, fetch_local=fetch_local)
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=fetch_local)
    return list(done)


def fetch(refs: list[Any]) -> Iterator[Any]:
    """The results of ``refs`` in order, fetched one at a time."""
    import ray

    for i in range(len(refs)):
        # Drop each result's reference once fetched: the object store frees it.
        ref, refs[i] = refs[i], None
        part = ray.get(ref)
        del ref
        yield part


def _merge(combine: Combine, refs: list[Any]) -> Any:
    # The references come inside a list, so Ray does not fetch them all before the task starts:
    # the task fetches one partial at a time, as the driver does, and holds the fold and one.
    return combine(fetch(list(refs)))


def _task_tree(refs: list[Any], combine: Combine, root: Combine) -> Iterator[Any]:
    """The tree on merge tasks (Ray retries them, rebuilding lost inputs from lineage): a merge
    task is submitted once each of its FAN_IN inputs is done.

    Submitted earlier, a merge task would start on a worker and wait there for the partitions
    still running: a task blocked in ``ray.get`` frees its CPU, so Ray starts another worker
    process for the partitions queued behind it (measured: an audit of 10 partitions then took
    twice the CPU time of one of 6).
    """
    import ray

    merge = ray.remote(max_retries=3)(_merge)
    level = list(refs)
    refs.clear()  # the caller's list: each partial is then held only until its merge task ends
    while len(level) > FAN_IN:
        groups = [level[i : i + FAN_IN] for i in range(0, len(level), FAN_IN)]
        del level
        merged: list[Any] = [None] * len(groups)
        done: set[Any] = set()
        while any(m is None for m in merged):
            for i, group in enumerate(groups):
                if merged[i] is None and group and all(r in done for r in group):
                    merged[i] = merge.remote(combine, group)
                    done.difference_update(group)
                    groups[i] = []  # held by the merge task now: freed from the object store after it
            running = [r for group in groups for r in group if r not in done]
            if running:  # wait for one more input (not fetched here: the merge task reads it)
                ready, _ = ray.wait(running, num_returns=1, fetch_local=False)
                done.update(ready)
        level = merged
    yield root(fetch_early(level))
