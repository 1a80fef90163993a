"""Benchmarks of tione-server: DescribeTrainingTasks latency by dataset size, throughput against a floor,
import time and server memory, printed as one markdown table (`python -m bench --quick`, `make bench`).
"""
