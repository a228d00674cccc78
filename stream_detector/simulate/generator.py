"""A seeded simulator of card transactions with three fraud scenarios.

The design reproduces the simulated data set of *Reproducible Machine Learning for Credit
Card Fraud Detection - Practical Handbook* (Le Borgne, Siblini, Lebichot, Bontempi), whose
published parameters are the defaults:

- customers at uniform locations on a 100 x 100 grid, each with a mean amount ~ U(5, 100),
  its standard deviation half the mean, and a mean number of transactions a day ~ U(0, 4)
  (the day's count is Poisson);
- terminals at uniform locations; a customer uses the terminals closer than ``radius``;
- a transaction's time of day ~ N(noon, 20,000 s), dropped when it falls outside the day;
  its amount ~ N(mean, std), a negative draw replaced by U(0, 2 x mean); its terminal drawn
  uniformly among the customer's;
- fraud: (1) every amount over 220; (2) terminals compromised each day, all of whose
  transactions in the next 28 days are fraud; (3) customers compromised each day, a third of
  whose transactions in the next 14 days have their amount multiplied by 5 and are fraud. A
  later scenario overrides an earlier one.

At the book's scale (5,000 customers, 10,000 terminals, 183 days) this gives about 1.77
million transactions and 0.8-0.9 % fraud (the book: 1,754,155 and 0.84 %).

Every random draw comes from a stream keyed by ``(random_state, purpose, day)``, so a day's
transactions depend on the seed and the day only: days ``[a, b)`` generated alone equal the
same days of a longer run, which is how a live stream continues a training history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from stream_detector.errors import ConfigError
from stream_detector.simulate.transactions import Transactions
from stream_detector.simulate.world import World, make_world

__all__ = ["PRESETS", "Preset", "TransactionSimulator"]

Preset = Literal["demo", "book"]

PRESETS: dict[Preset, dict[str, Any]] = {
    "book": {},
    # A tenth of the book's population, the compromise rates scaled with it so the fraud
    # rate stays about the book's: ~1,000 transactions a day.
    "demo": {
        "n_customers": 500,
        "n_terminals": 1_000,
        "n_days": 42,
        "compromised_terminals_per_day": 0.2,
        "compromised_customers_per_day": 0.3,
    },
}
"""Named parameter sets: ``"book"`` is the handbook's data set, ``"demo"`` a small one."""

_DAY_MS = 86_400_000
_NOON_MS = 43_200_000
_TIME_STD_MS = 20_000_000
_WORLD, _DAY, _TERMINALS, _CUSTOMERS = 0, 1, 2, 3  # seed streams


class TransactionSimulator:
    """Generate card transactions, legitimate and fraudulent, day by day.

    Parameters
    ----------
    n_customers, n_terminals
        Population sizes.
    n_days
        Days :meth:`generate` covers by default.
    start_date
        The first day (UTC), ISO format.
    radius
        A customer uses the terminals closer than this (grid units).
    amount_threshold
        Scenario 1: amounts above this are fraud.
    compromised_terminals_per_day, terminal_compromise_days
        Scenario 2: terminals compromised per day (a fractional rate spreads them evenly:
        0.2 is one every fifth day) and for how many days, the day itself included.
    compromised_customers_per_day, customer_compromise_days
        Scenario 3: customers compromised per day and for how many days.
    customer_fraud_share, customer_fraud_multiplier
        Scenario 3: the share of a compromised customer's transactions that are fraud, and the
        factor applied to their amounts.
    random_state
        Seed; ``None`` draws one (kept in ``seed_``).

    Attributes
    ----------
    seed_ : int
        The seed in use.
    world_ : World
        Customers, terminals and who uses which terminal; built on first use.

    Examples
    --------
    >>> sim = TransactionSimulator.from_preset("demo", random_state=7)
    >>> tx = sim.generate(n_days=10)
    >>> len(tx), tx.n_frauds, tx.scenario_counts()
    (9696, 18, {0: 9678, 1: 8, 2: 9, 3: 1})
    >>> bool((tx["amount"][tx["fraud_scenario"] == 1] > 220).all())
    True
    >>> later = sim.generate(start_day=9, n_days=1)  # day 9 alone equals day 9 of the run
    >>> bool((later["event_id"] == tx["event_id"][-len(later):]).all())
    True
    """

    def __init__(
        self,
        *,
        n_customers: int = 5_000,
        n_terminals: int = 10_000,
        n_days: int = 183,
        start_date: str = "2018-04-01",
        radius: float = 5.0,
        amount_threshold: float = 220.0,
        compromised_terminals_per_day: float = 2.0,
        terminal_compromise_days: int = 28,
        compromised_customers_per_day: float = 3.0,
        customer_compromise_days: int = 14,
        customer_fraud_share: float = 1 / 3,
        customer_fraud_multiplier: float = 5.0,
        random_state: int | None = None,
    ) -> None:
        self.n_customers = n_customers
        self.n_terminals = n_terminals
        self.n_days = n_days
        self.start_date = start_date
        self.radius = radius
        self.amount_threshold = amount_threshold
        self.compromised_terminals_per_day = compromised_terminals_per_day
        self.terminal_compromise_days = terminal_compromise_days
        self.compromised_customers_per_day = compromised_customers_per_day
        self.customer_compromise_days = customer_compromise_days
        self.customer_fraud_share = customer_fraud_share
        self.customer_fraud_multiplier = customer_fraud_multiplier
        self.random_state = random_state

    @classmethod
    def from_preset(cls, preset: Preset, **overrides: Any) -> TransactionSimulator:
        """A simulator with a preset's parameters, ``overrides`` applied on top."""
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {list(get_args(Preset))}; got {preset!r}")
        return cls(**{**PRESETS[preset], **overrides})

    # -- generation --------------------------------------------------------------------

    def generate(self, *, start_day: int = 0, n_days: int | None = None) -> Transactions:
        """Transactions of days ``[start_day, start_day + n_days)``, sorted by time.

        ``n_days`` defaults to the ``n_days`` parameter.
        """
        return Transactions.concatenate(list(self.iter_days(start_day=start_day, n_days=n_days)))

    def take(self, count: int, *, start_day: int = 0) -> Transactions:
        """The first ``count`` transactions from ``start_day`` on, over as many days as it takes.

        Raises
        ------
        ConfigError
            If ``count`` is negative, or a whole year of days yields no transaction.
        """
        if count < 0:
            raise ConfigError(f"count must be >= 0; got {count}")
        parts: list[Transactions] = []
        total = empty_days = 0
        days = self._days(start_day, None)
        while total < count:
            day = next(days)
            parts.append(day.head(count - total))
            total += len(parts[-1])
            empty_days = 0 if len(day) else empty_days + 1
            if empty_days >= 366:
                raise ConfigError(
                    f"the simulation yields no transactions (366 days in a row "
                    f"without one from day {start_day}); got {total} of {count}"
                )
        return Transactions.concatenate(parts)

    def iter_days(self, *, start_day: int = 0, n_days: int | None = None) -> Iterator[Transactions]:
        """Yield the transactions of each day in ``[start_day, start_day + n_days)``.

        ``n_days`` defaults to the ``n_days`` parameter. Only one day is in memory at a time.
        """
        return self._days(start_day, self.n_days if n_days is None else n_days)

    def _days(self, start_day: int, n_days: int | None) -> Iterator[Transactions]:
        """Days from ``start_day`` on; forever when ``n_days`` is None."""
        self._validate()
        if start_day < 0 or (n_days is not None and n_days < 0):
            raise ConfigError(f"start_day and n_days must be >= 0; got {start_day} and {n_days}")
        world = self._world()
        day = start_day
        while n_days is None or day < start_day + n_days:
            yield self._day(world, day)
            day += 1

    def compromised_on(self, day: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The terminals (scenario 2) and customers (scenario 3) compromised on ``day``.

        A terminal compromised on day ``d`` turns every transaction of days
        ``[d, d + terminal_compromise_days)`` on it into fraud; a customer likewise for
        ``customer_compromise_days``.

        Examples
        --------
        >>> sim = TransactionSimulator(random_state=0)
        >>> [len(members) for members in sim.compromised_on(5)]
        [2, 3]
        >>> demo = TransactionSimulator.from_preset("demo", random_state=0)
        >>> [len(demo.compromised_on(d)[0]) for d in range(10)]  # 0.2 a day
        [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        """
        self._validate()
        return (
            self._new(_TERMINALS, day, self.compromised_terminals_per_day, self.n_terminals),
            self._new(_CUSTOMERS, day, self.compromised_customers_per_day, self.n_customers),
        )

    # -- internals ---------------------------------------------------------------------

    def _validate(self) -> None:
        checks = {
            "n_customers": self.n_customers >= 1,
            "n_terminals": self.n_terminals >= 1,
            "n_days": self.n_days >= 0,
            "radius": self.radius > 0,
            "compromised_terminals_per_day": self.compromised_terminals_per_day >= 0,
            "compromised_customers_per_day": self.compromised_customers_per_day >= 0,
            "terminal_compromise_days": self.terminal_compromise_days >= 0,
            "customer_compromise_days": self.customer_compromise_days >= 0,
            "customer_fraud_share": 0 <= self.customer_fraud_share <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"simulator parameter {name} is out of range; got {getattr(self, name)!r}"
                )
        try:
            dt.date.fromisoformat(self.start_date)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"start_date must be an ISO date like 2018-04-01; got {self.start_date!r}"
            ) from exc

    def _rng(self, stream: int, day: int = 0) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._seed(), spawn_key=(stream, day)))

    def _seed(self) -> int:
        if getattr(self, "seed_", None) is None:
            if self.random_state is None:
                self.seed_ = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
            else:
                self.seed_ = int(self.random_state)
        return self.seed_

    def _world(self) -> World:
        if getattr(self, "world_", None) is None:
            self.world_ = make_world(
                self._rng(_WORLD),
                n_customers=self.n_customers,
                n_terminals=self.n_terminals,
                radius=self.radius,
            )
        return self.world_

    def _new(self, stream: int, day: int, rate: float, population: int) -> npt.NDArray[np.int64]:
        """Members compromised on ``day``: ``rate`` a day, spread evenly over the days."""
        k = min(population, int(np.floor((day + 1) * rate + 1e-9) - np.floor(day * rate + 1e-9)))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        return np.sort(self._rng(stream, day).choice(population, size=k, replace=False))

    def _active(
        self, stream: int, day: int, rate: float, window: int, population: int
    ) -> npt.NDArray[np.int64]:
        """Members compromised on any of the ``window`` days ending with ``day``."""
        first = max(0, day - window + 1)
        picked = [self._new(stream, d, rate, population) for d in range(first, day + 1)]
        return np.unique(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)

    def _day(self, world: World, day: int) -> Transactions:
        rng = self._rng(_DAY, day)
        counts = rng.poisson(world.mean_tx_per_day)
        customer = np.repeat(np.arange(self.n_customers, dtype=np.int64), counts)
        n = customer.size
        time_ms = np.floor(rng.normal(_NOON_MS, _TIME_STD_MS, n)).astype(np.int64)
        mean = world.mean_amount[customer]
        amount = rng.normal(mean, world.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
        n_near = world.n_neighbours[customer]
        pick = np.floor(rng.random(n) * n_near).astype(np.int64)
        u_fraud = rng.random(n)
        # Keep transactions inside the day, of customers who have a terminal; then sort by time.
        keep = np.flatnonzero((time_ms > 0) & (time_ms < _DAY_MS) & (n_near > 0))
        keep = keep[np.argsort(time_ms[keep], kind="stable")]
        customer, time_ms, pick, u_fraud = customer[keep], time_ms[keep], pick[keep], u_fraud[keep]
        amount = np.round(amount[keep], 2)
        terminal = world.neighbours[world.neighbour_offsets[customer] + pick]

        scenario = np.where(amount > self.amount_threshold, 1, 0).astype(np.int64)
        terminals = self._active(
            _TERMINALS,
            day,
            self.compromised_terminals_per_day,
            self.terminal_compromise_days,
            self.n_terminals,
        )
        scenario[np.isin(terminal, terminals)] = 2
        customers = self._active(
            _CUSTOMERS,
            day,
            self.compromised_customers_per_day,
            self.customer_compromise_days,
            self.n_customers,
        )
        hit = np.isin(customer, customers) & (u_fraud < self.customer_fraud_share)
        amount[hit] = np.round(amount[hit] * self.customer_fraud_multiplier, 2)
        scenario[hit] = 3

        start = dt.datetime.fromisoformat(self.start_date).replace(tzinfo=dt.UTC)
        day_ms = int(start.timestamp() * 1000) + day * _DAY_MS
        cxy, txy = world.customer_xy[customer], world.terminal_xy[terminal]
        return Transactions(
            {
                "event_id": _names(f"tx-{day}-", np.arange(len(keep))),
                "entity_id": _names("c-", customer),
                "timestamp": day_ms + time_ms,
                "terminal_id": _names("t-", terminal),
                "customer_id": _names("c-", customer),
                "amount": amount,
                "hour_of_day": (time_ms // 360) / 10_000,  # 4 decimals, < 24
                "day_of_week": np.full(len(keep), (start.weekday() + day) % 7, dtype=np.int64),
                "customer_x": cxy[:, 0],
                "customer_y": cxy[:, 1],
                "terminal_x": txy[:, 0],
                "terminal_y": txy[:, 1],
                "distance": _truncate3(np.hypot(cxy[:, 0] - txy[:, 0], cxy[:, 1] - txy[:, 1])),
                "is_fraud": (scenario > 0).astype(np.int64),
                "fraud_scenario": scenario,
            }
        )


def _names(prefix: str, numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """``prefix + str(n)`` for each number, as a fixed-width string array no wider than needed."""
    digits = len(str(int(numbers.max()))) if numbers.size else 1
    return np.strings.add(prefix, numbers.astype(f"U{digits}"))


def _truncate3(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Three decimals, rounded down, so a distance under the radius stays under it."""
    return np.floor(values * 1000) / 1000
