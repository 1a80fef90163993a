"""Benchmarks of tione-server: DescribeTrainingTasks latency by dataset size, import time and server memory in
one markdown table, then issue 12's targets in another: throughput against a floor, against moto, with two
workers (`python -m bench --quick`, `make bench`).
"""
