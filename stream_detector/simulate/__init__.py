"""Simulated card transactions with labelled fraud, to train on and to stream.

:class:`TransactionSimulator` reproduces the simulated data set of the *Reproducible Machine
Learning for Credit Card Fraud Detection* handbook: customers, terminals, and three fraud
scenarios (large amounts, compromised terminals, compromised cards). It returns
:class:`Transactions`, one numpy array per column, which become a CSV training file
(:func:`~stream_detector.simulate.output.write_csv`, label included), JSON Lines events
without the label, label messages that follow their events after a delay, or a live Kafka
stream (``stream-detector simulate``).

>>> from stream_detector.simulate import DEFAULT_FEATURES, TransactionSimulator
>>> sim = TransactionSimulator.from_preset("demo", random_state=0)
>>> history = sim.generate()                      # days 0-41: the training history
>>> live = sim.generate(start_day=42, n_days=1)   # the day after, to stream
>>> len(history), f"{history.fraud_rate:.2%}", DEFAULT_FEATURES[0]
(40091, '0.75%', 'amount')
"""

from __future__ import annotations

from stream_detector.simulate.generator import PRESETS, Preset, TransactionSimulator
from stream_detector.simulate.transactions import (
    ALL_COLUMNS,
    CARD_FEATURES,
    DEFAULT_FEATURES,
    EVENT_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    TRAINING_COLUMNS,
    Transactions,
)
from stream_detector.simulate.world import World, make_world

__all__ = [
    "ALL_COLUMNS",
    "CARD_FEATURES",
    "DEFAULT_FEATURES",
    "EVENT_COLUMNS",
    "FEATURE_COLUMNS",
    "LABEL_COLUMN",
    "PRESETS",
    "TRAINING_COLUMNS",
    "Preset",
    "TransactionSimulator",
    "Transactions",
    "World",
    "make_world",
]
