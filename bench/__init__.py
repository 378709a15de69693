"""hookline's benchmark: ``python -m bench.run`` (``make bench``); see docs/performance.md."""
