"""Performance benchmarks run by `make bench` (`python -m bench [section ...]`).

Each section measures figures against the targets of the issues and returns them for
the closing summary. Benchmarks are not tests: they run against their own database
(smartcity_bench, prepared by scripts/bench.sh) and are never collected by pytest.
"""
