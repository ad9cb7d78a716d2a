"""Results: the SQLite store, the one joined table of quality and speed, the Pareto front, the figures
and the report. Everything downstream of a measurement reads :func:`harness.results.table.load_table`."""
