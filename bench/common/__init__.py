"""Helpers of the system-level benchmarks (bench/company.py, bench/soak.py): the whole system as
processes on scratch databases and a scratch vhost, wrk, resident memory, percentiles."""
