#!/usr/bin/env bash
# Measures the Local sandbox backend against its targets in one run and prints the
# ratios (docs/benchmarks.md records the results). Needs root, bubblewrap and Debian's
# python3-matplotlib/numpy/pandas/seaborn/plotly. Nothing here asserts a duration.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
out=$(go test -run '^$' -bench 'BenchmarkRatios' -benchtime 1x -count "${COUNT:-1}" ./internal/sandbox/local/)
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$out" | awk '
/^BenchmarkRatios/ {
  for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
  printf "claim a warm sandbox     %8.1f µs                         (target <= 5000 µs)\n", v["claim-µs"]
  printf "floor (hot python3)      %8.1f ms\n", v["floor-ms"]
  printf "warm seed chart          %8.1f ms   warm/floor  = %.2f    (target <= 1.3)\n", v["warm-ms"], v["warm/floor"]
  printf "bare bwrap python3       %8.1f ms\n", v["bare-bwrap-ms"]
  printf "cold seed chart          %8.1f ms   cold/bare   = %.2f    (target <= 1.2)\n", v["cold-ms"], v["cold/bare"]
  printf "2 hot pythons at once    %8.2f /s   (measured 2/floor)\n", v["floor-jobs/s@2"]
  printf "2 concurrent jobs        %8.2f /s   pool/2floor = %.2f    (target >= 0.8; vs 2/latency-floor %.2f)\n", v["jobs/s@2"], v["throughput/(2/floor)"], v["throughput/(2/floor-latency)"]
  printf "page fault (first touch) %8.2f µs   (a job writes thousands of pages of a freshly forked process; well under 1 µs on bare metal)\n", v["fault-µs"]
}'
