"""The transaction simulator against the handbook's published facts and exact invariants."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from stream_detector.errors import ConfigError
from stream_detector.simulate import ALL_COLUMNS, Transactions, TransactionSimulator, make_world

# The handbook's simulated data set (chapter "Simulated dataset").
BOOK_TRANSACTIONS = 1_754_155
BOOK_FRAUD_RATE = 0.0084
BOOK_FRAUDS_PER_DAY = 85
# P(0 < time < 1 day) for time ~ N(noon, 20,000 s): the share of draws kept.
IN_DAY = math.erf(43_200 / 20_000 / math.sqrt(2))


def _phi_tail(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal Z."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2)) for v in z])


@dataclass
class RunStats:
    """Aggregates of a run, gathered day by day so the run never sits in memory whole."""

    n: int = 0
    scenarios: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))
    frauds_per_day: list[int] = field(default_factory=list)
    hour_sum: float = 0.0
    hour_sq_sum: float = 0.0
    violations: dict[str, int] = field(default_factory=dict)

    def add(self, tx: Transactions, radius: float) -> None:
        self.n += len(tx)
        self.scenarios += np.bincount(tx["fraud_scenario"], minlength=4)
        self.frauds_per_day.append(tx.n_frauds)
        hour = tx["hour_of_day"]
        self.hour_sum += float(hour.sum())
        self.hour_sq_sum += float((hour**2).sum())
        checks = {
            "amount<0": tx["amount"] < 0,
            "over 220 not fraud": (tx["amount"] > 220) & (tx["is_fraud"] == 0),
            "scenario 1 under 220": (tx["fraud_scenario"] == 1) & (tx["amount"] <= 220),
            "distance>=radius": tx["distance"] >= radius,
            "hour out of day": (hour < 0) | (hour >= 24),
            "label != scenario>0": tx["is_fraud"] != (tx["fraud_scenario"] > 0),
        }
        for name, bad in checks.items():
            self.violations[name] = self.violations.get(name, 0) + int(bad.sum())


@pytest.fixture(scope="module")
def book() -> tuple[TransactionSimulator, RunStats]:
    """The handbook's full data set (5,000 customers, 10,000 terminals, 183 days), seed 0."""
    sim = TransactionSimulator(random_state=0)
    stats = RunStats()
    for day in sim.iter_days():
        stats.add(day, sim.radius)
    return sim, stats


@pytest.fixture(scope="module")
def demo() -> tuple[TransactionSimulator, Transactions]:
    sim = TransactionSimulator.from_preset("demo", random_state=3)
    return sim, sim.generate()


def _active(sim: TransactionSimulator, kind: int, window: int, n_days: int) -> list[set[int]]:
    """Members compromised on each day, rebuilt from the per-day compromises."""
    new = [set(sim.compromised_on(d)[kind].tolist()) for d in range(n_days)]
    return [set().union(*new[max(0, d - window + 1) : d + 1]) for d in range(n_days)]


def _days(sim: TransactionSimulator, tx: Transactions) -> np.ndarray:
    start = dt.datetime.fromisoformat(sim.start_date).replace(tzinfo=dt.UTC)
    return (tx["timestamp"] - int(start.timestamp() * 1000)) // 86_400_000


# -- the book's scale ---------------------------------------------------------------------------


def test_book_scale_reproduces_the_published_totals(
    book: tuple[TransactionSimulator, RunStats],
) -> None:
    _, stats = book
    fraud_rate = stats.scenarios[1:].sum() / stats.n
    assert abs(stats.n / BOOK_TRANSACTIONS - 1) < 0.03, stats.n
    assert abs(fraud_rate - BOOK_FRAUD_RATE) < 0.001, fraud_rate
    assert abs(np.mean(stats.frauds_per_day) - BOOK_FRAUDS_PER_DAY) < 8, stats.frauds_per_day
    assert stats.violations == dict.fromkeys(stats.violations, 0)


def test_book_scale_counts_match_their_expectation_under_the_model(
    book: tuple[TransactionSimulator, RunStats],
) -> None:
    """Each count is (close to) Poisson given the world and the compromise schedule."""
    sim, stats = book
    world, n_days = sim.world_, sim.n_days
    n_near = world.n_neighbours
    per_customer = world.mean_tx_per_day * IN_DAY * (n_near > 0)  # kept transactions a day
    per_terminal = np.bincount(
        world.neighbours,
        weights=np.repeat(per_customer / np.maximum(n_near, 1), n_near),
        minlength=sim.n_terminals,
    )
    z = (220 - world.mean_amount) / world.std_amount
    terminals = _active(sim, 0, sim.terminal_compromise_days, n_days)
    customers = _active(sim, 1, sim.customer_compromise_days, n_days)
    expected = {
        "all": per_customer.sum() * n_days,
        "scenario 1": (per_customer * _phi_tail(z)).sum() * n_days,
        "scenario 2": sum(per_terminal[sorted(t)].sum() for t in terminals),
        "scenario 3": sum(per_customer[sorted(c)].sum() for c in customers) / 3,
    }
    observed = {
        "all": stats.n,
        "scenario 1": stats.scenarios[1],
        "scenario 2": stats.scenarios[2],
        "scenario 3": stats.scenarios[3],
    }
    for name, mean in expected.items():
        # 4 standard deviations, plus 2% for later scenarios overriding earlier ones.
        assert abs(observed[name] - mean) < 4 * math.sqrt(mean) + 0.02 * mean, (name, mean)
    assert stats.scenarios[2] > stats.scenarios[3] > stats.scenarios[1] > 500


def test_time_of_day_is_a_normal_around_noon_cut_to_the_day(
    book: tuple[TransactionSimulator, RunStats],
) -> None:
    _, stats = book
    mean = stats.hour_sum / stats.n
    sd = math.sqrt(stats.hour_sq_sum / stats.n - mean**2)
    a = 43_200 / 20_000
    density = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    truncated_sd = 20_000 / 3600 * math.sqrt(1 - 2 * a * density / IN_DAY)
    assert abs(mean - 12) < 4 * truncated_sd / math.sqrt(stats.n)
    assert sd == pytest.approx(truncated_sd, rel=2e-3)


def test_book_world_follows_the_published_profiles(
    book: tuple[TransactionSimulator, RunStats],
) -> None:
    world = book[0].world_
    assert world.mean_amount.min() >= 5
    assert world.mean_amount.max() <= 100
    assert world.mean_amount.mean() == pytest.approx(52.5, abs=4 * 27.4 / math.sqrt(5000))
    np.testing.assert_array_equal(world.std_amount, world.mean_amount / 2)
    assert world.mean_tx_per_day.min() >= 0
    assert world.mean_tx_per_day.max() <= 4
    assert world.mean_tx_per_day.mean() == pytest.approx(2.0, abs=4 * 1.155 / math.sqrt(5000))
    # pi r^2 terminals per unit area, a few percent fewer near the grid's edges.
    assert 0.9 * math.pi * 25 < world.n_neighbours.mean() < math.pi * 25


# -- exact invariants on the demo preset --------------------------------------------------------


def test_demo_preset_is_a_small_run_with_the_book_fraud_rate(
    demo: tuple[TransactionSimulator, Transactions],
) -> None:
    _, tx = demo
    assert 30_000 <= len(tx) <= 60_000
    assert 0.005 <= tx.fraud_rate <= 0.02
    assert all(count > 0 for count in tx.scenario_counts().values())


def test_same_seed_same_transactions_other_seed_others() -> None:
    first = TransactionSimulator.from_preset("demo", random_state=11).generate(n_days=3)
    again = TransactionSimulator.from_preset("demo", random_state=11).generate(n_days=3)
    other = TransactionSimulator.from_preset("demo", random_state=12).generate(n_days=3)
    for name in ALL_COLUMNS:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
    assert not np.array_equal(first["amount"][:100], other["amount"][:100])


def test_days_generated_alone_equal_the_same_days_of_a_longer_run(
    demo: tuple[TransactionSimulator, Transactions],
) -> None:
    sim, tx = demo
    fresh = TransactionSimulator.from_preset("demo", random_state=3)
    tail = fresh.generate(start_day=30, n_days=12)
    days = _days(sim, tx)
    assert tail.n_frauds > 0
    for name in ALL_COLUMNS:
        np.testing.assert_array_equal(tail[name], tx[name][days >= 30], err_msg=name)


def test_take_runs_past_n_days_and_stops_at_count() -> None:
    sim = TransactionSimulator.from_preset("demo", random_state=5, n_days=1)
    two_days = sim.generate(n_days=2)
    taken = sim.take(len(two_days) - 7, start_day=0)
    assert len(taken) == len(two_days) - 7
    np.testing.assert_array_equal(taken["event_id"], two_days["event_id"][:-7])
    assert len(sim.take(0)) == 0


def test_scenario_1_is_exactly_an_amount_over_220(
    demo: tuple[TransactionSimulator, Transactions],
) -> None:
    _, tx = demo
    over = tx["amount"] > 220
    scenario = tx["fraud_scenario"]
    assert over.sum() > 0
    assert (tx["is_fraud"][over] == 1).all()
    assert (over[scenario == 1]).all()
    assert (tx["amount"][tx["is_fraud"] == 0] <= 220).all()


def test_compromised_terminals_turn_every_transaction_in_their_window_into_fraud(
    demo: tuple[TransactionSimulator, Transactions],
) -> None:
    sim, tx = demo
    active = _active(sim, 0, 28, sim.n_days)
    days = _days(sim, tx)
    terminal = np.array([int(t[2:]) for t in tx["terminal_id"]])
    hit = np.array([t in active[d] for t, d in zip(terminal, days, strict=True)])
    scenario = tx["fraud_scenario"]
    assert hit.sum() > 100
    assert set(np.unique(scenario[hit]).tolist()) <= {2, 3}
    assert (hit[scenario == 2]).all()
    assert sum(len(sim.compromised_on(d)[0]) for d in range(sim.n_days)) == 8  # 0.2 a day


def test_compromised_customers_pay_five_times_on_a_third_of_their_transactions() -> None:
    params = {"random_state": 4, "n_days": 20, "compromised_customers_per_day": 3.0}
    sim = TransactionSimulator.from_preset("demo", **params)
    tx = sim.generate()
    unchanged = TransactionSimulator.from_preset(
        "demo", **params, customer_fraud_multiplier=1.0
    ).generate()
    s3 = tx["fraud_scenario"] == 3
    for name in ALL_COLUMNS:
        if name != "amount":
            np.testing.assert_array_equal(tx[name], unchanged[name], err_msg=name)
    np.testing.assert_array_equal(tx["amount"][~s3], unchanged["amount"][~s3])
    np.testing.assert_allclose(tx["amount"][s3], np.round(unchanged["amount"][s3] * 5, 2))

    active = _active(sim, 1, 14, sim.n_days)
    days = _days(sim, tx)
    customer = np.array([int(c[2:]) for c in tx["customer_id"]])
    hit = np.array([c in active[d] for c, d in zip(customer, days, strict=True)])
    assert (hit[s3]).all()
    share = s3[hit].mean()
    assert abs(share - 1 / 3) < 4 * math.sqrt(2 / 9 / hit.sum()), (share, hit.sum())


@pytest.mark.parametrize(("rate", "days", "expected"), [(0.2, 100, 20), (0.3, 10, 3), (2, 7, 14)])
def test_fractional_compromise_rates_spread_evenly(rate: float, days: int, expected: int) -> None:
    sim = TransactionSimulator(
        n_customers=50, n_terminals=50, compromised_terminals_per_day=rate, random_state=0
    )
    per_day = [sim.compromised_on(d)[0] for d in range(days)]
    assert sum(len(t) for t in per_day) == expected
    assert all(len(np.unique(t)) == len(t) and (t < 50).all() for t in per_day)


def test_features_agree_with_timestamp_and_world(
    demo: tuple[TransactionSimulator, Transactions],
) -> None:
    sim, tx = demo
    world = sim.world_
    ts = tx["timestamp"]
    assert (np.diff(ts) >= 0).all()
    assert len(np.unique(tx["event_id"])) == len(tx)
    weekday = [dt.datetime.fromtimestamp(t / 1000, dt.UTC).weekday() for t in ts[::97]]
    np.testing.assert_array_equal(tx["day_of_week"][::97], weekday)
    np.testing.assert_array_equal(tx["hour_of_day"], (ts % 86_400_000 // 360) / 10_000)
    customer = np.array([int(c[2:]) for c in tx["customer_id"]])
    terminal = np.array([int(t[2:]) for t in tx["terminal_id"]])
    np.testing.assert_array_equal(tx["entity_id"], [f"c-{c}" for c in customer])
    np.testing.assert_array_equal(tx["customer_id"], tx["entity_id"])
    np.testing.assert_array_equal(tx["customer_x"], world.customer_xy[customer, 0])
    np.testing.assert_array_equal(tx["terminal_y"], world.terminal_xy[terminal, 1])
    dx = world.customer_xy[customer] - world.terminal_xy[terminal]
    np.testing.assert_array_equal(
        tx["distance"], np.floor(np.hypot(dx[:, 0], dx[:, 1]) * 1000) / 1000
    )
    assert (tx["distance"] < sim.radius).all()
    np.testing.assert_array_equal(tx["amount"], np.round(tx["amount"], 2))


def test_world_neighbours_match_a_brute_force_search() -> None:
    world = make_world(np.random.default_rng(9), n_customers=700, n_terminals=3000, radius=5)
    d2 = ((world.customer_xy[:, None, :] - world.terminal_xy[None, :, :]) ** 2).sum(-1)
    rows, cols = np.nonzero(d2 < 25)
    np.testing.assert_array_equal(world.n_neighbours, np.bincount(rows, minlength=700))
    np.testing.assert_array_equal(world.neighbours, cols)


def test_customers_without_terminals_make_no_transactions() -> None:
    sim = TransactionSimulator(n_customers=200, n_terminals=20, n_days=5, random_state=2)
    tx = sim.generate()
    lonely = np.flatnonzero(sim.world_.n_neighbours == 0)
    assert len(lonely) > 50
    assert len(tx) > 0
    customer = np.array([int(c[2:]) for c in tx["customer_id"]])
    assert not np.isin(customer, lonely).any()


def test_random_state_none_draws_a_seed_and_keeps_it() -> None:
    sim = TransactionSimulator.from_preset("demo", random_state=None, n_days=1)
    first, second = sim.generate(), sim.generate()
    assert isinstance(sim.seed_, int)
    np.testing.assert_array_equal(first["amount"], second["amount"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_customers": 0}, "n_customers is out of range; got 0"),
        ({"radius": 0.0}, "radius is out of range; got 0.0"),
        ({"customer_fraud_share": 1.5}, "customer_fraud_share is out of range; got 1.5"),
        ({"compromised_terminals_per_day": -1}, "compromised_terminals_per_day"),
        ({"start_date": "April"}, "start_date must be an ISO date like 2018-04-01; got 'April'"),
    ],
)
def test_invalid_parameters_raise_config_error(params: dict[str, object], message: str) -> None:
    sim = TransactionSimulator(**params)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        sim.generate(n_days=1)


def test_unknown_preset_and_negative_days_raise_config_error() -> None:
    with pytest.raises(ConfigError, match=r"preset must be one of \['demo', 'book'\]; got 'x'"):
        TransactionSimulator.from_preset("x")  # type: ignore[arg-type]
    sim = TransactionSimulator.from_preset("demo")
    with pytest.raises(ConfigError, match="start_day and n_days must be >= 0; got -1 and 2"):
        sim.generate(start_day=-1, n_days=2)
