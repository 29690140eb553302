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
function met(ok) { return ok ? "met" : "NOT met" }
/^BenchmarkRatios/ {
  for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
  printf "claim a warm sandbox     %8.1f µs   (target <= 5000 µs: %s)\n", v["claim-µs"], met(v["claim-µs"] <= 5000)
  printf "floor (hot python3)      %8.1f ms\n", v["floor-ms"]
  printf "fork floor (hot, fork)   %8.1f ms   (the floor plus a fresh process per chart: the price of isolation here)\n", v["fork-floor-ms"]
  printf "warm seed chart          %8.1f ms   warm/fork-floor = %.2f (target <= 1.2: %s); warm/floor = %.2f (reported)\n", v["warm-ms"], v["warm/fork-floor"], met(v["warm/fork-floor"] <= 1.2), v["warm/floor"]
  printf "bare bwrap python3       %8.1f ms\n", v["bare-bwrap-ms"]
  printf "cold seed chart          %8.1f ms   cold/bare   = %.2f    (target <= 1.2: %s)\n", v["cold-ms"], v["cold/bare"], met(v["cold/bare"] <= 1.2)
  printf "2 hot pythons at once    %8.2f /s   (measured 2/floor)\n", v["floor-jobs/s@2"]
  printf "2 fork floors at once    %8.2f /s\n", v["fork-floor-jobs/s@2"]
  printf "2 concurrent jobs        %8.2f /s   pool/2fork-floors = %.2f (target >= 0.8: %s); pool/2floor = %.2f (reported)\n", v["jobs/s@2"], v["throughput/(2/fork-floor)"], met(v["throughput/(2/fork-floor)"] >= 0.8), v["throughput/(2/floor)"]
  printf "page fault (first touch) %8.2f µs   (a job writes thousands of pages of a freshly forked process; well under 1 µs on bare metal)\n", v["fault-µs"]
}'
