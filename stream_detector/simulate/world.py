"""The simulated world: customers, terminals, and which terminals each customer uses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["GRID_SIZE", "World", "make_world"]

GRID_SIZE = 100.0
"""Customers and terminals live on a ``GRID_SIZE`` x ``GRID_SIZE`` square."""

_BLOCK_CELLS = 2_000_000  # customer-terminal distances held in memory at once


@dataclass(frozen=True)
class World:
    """Customers and terminals; customer ``i`` is row ``i``, terminal ``j`` is row ``j``.

    ``neighbours[neighbour_offsets[c]:neighbour_offsets[c + 1]]`` are the terminals customer
    ``c`` uses, in increasing order.
    """

    customer_xy: npt.NDArray[np.float64]
    mean_amount: npt.NDArray[np.float64]
    std_amount: npt.NDArray[np.float64]
    mean_tx_per_day: npt.NDArray[np.float64]
    terminal_xy: npt.NDArray[np.float64]
    neighbour_offsets: npt.NDArray[np.int64]
    neighbours: npt.NDArray[np.int64]

    @property
    def n_neighbours(self) -> npt.NDArray[np.int64]:
        """Number of terminals each customer uses."""
        return np.diff(self.neighbour_offsets)


def make_world(
    rng: np.random.Generator, *, n_customers: int, n_terminals: int, radius: float
) -> World:
    """Draw customers and terminals and link each customer to the terminals within ``radius``.

    Customers and terminals sit at uniform locations (three decimals); a customer's mean
    amount is U(5, 100), its standard deviation half of it, its mean number of transactions
    a day U(0, 4). Distances are computed for blocks of customers at a time, so memory stays
    proportional to the block, not to customers x terminals.

    Examples
    --------
    >>> world = make_world(np.random.default_rng(0), n_customers=3, n_terminals=400, radius=5)
    >>> world.n_neighbours.tolist()
    [2, 3, 3]
    >>> bool(world.std_amount[0] == world.mean_amount[0] / 2)
    True
    """
    customer_xy = np.round(rng.uniform(0.0, GRID_SIZE, (n_customers, 2)), 3)
    mean_amount = rng.uniform(5.0, 100.0, n_customers)
    mean_tx = rng.uniform(0.0, 4.0, n_customers)
    terminal_xy = np.round(rng.uniform(0.0, GRID_SIZE, (n_terminals, 2)), 3)
    block = max(1, _BLOCK_CELLS // n_terminals)
    r2 = radius**2
    counts, found = [], []
    for lo in range(0, n_customers, block):
        xy = customer_xy[lo : lo + block]
        dx = xy[:, 0, None] - terminal_xy[None, :, 0]
        dy = xy[:, 1, None] - terminal_xy[None, :, 1]
        rows, cols = np.nonzero(dx * dx + dy * dy < r2)
        counts.append(np.bincount(rows, minlength=len(xy)))
        found.append(cols.astype(np.int64))
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return World(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        mean_tx_per_day=mean_tx,
        terminal_xy=terminal_xy,
        neighbour_offsets=offsets,
        neighbours=np.concatenate(found),
    )
