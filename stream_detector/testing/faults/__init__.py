"""The fault harness: real ``serve`` processes on a real broker, faults injected, outputs checked.

:mod:`~stream_detector.testing.faults.harness` holds the streams, output collectors and
``serve`` processes; :mod:`~stream_detector.testing.faults.scenarios` the scenarios (kill -9,
replicas, SIGTERM, broker outage, slow model, exactly-once); :mod:`~.checker` what every
scenario's outputs must satisfy. ``tests/faults/`` runs small variants of the scenarios (``make
test``), ``benchmarks/faults.py`` the full ones.
"""
