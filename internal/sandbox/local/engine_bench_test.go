package local

import (
	"context"
	"net/http"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/agent"
)

// waitAgentsWarm waits until every ready agent sandbox has a started kernel waiting
// (its /health says so), the agent engine's counterpart of waitArmed.
func waitAgentsWarm(b *testing.B, p *Pool) {
	b.Helper()
	waitFor(b, 2*time.Minute, "agents with a spare kernel", func() bool {
		ready := readySandboxes(p)
		for _, s := range ready {
			req, _ := http.NewRequest(http.MethodGet, s.z.client.BaseURL+"/health", nil)
			resp, err := s.z.client.HTTP.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.Header.Get(agent.HeaderSpareKernels) == "0" {
				return false
			}
		}
		return len(ready) > 0
	})
}

func agentBenchPool(b *testing.B, minReady, maxSandboxes int) *Pool {
	p := newTestPool(b, sandbox.PoolConfig{MinReady: minReady, MaxSandboxes: maxSandboxes}, Options{Engine: EngineAgent})
	waitFor(b, 2*time.Minute, "warm agent pool", func() bool { return p.Status().Ready == minReady })
	waitAgentsWarm(b, p)
	if os.Getenv("VIZOPS_BENCH_AGENT_NO_CELLS") != "" {
		// A job in three executions, as before the agent's cells extension (to compare).
		p.mu.Lock()
		for _, s := range readySandboxes(p) {
			s.z.client.NoCells = true
		}
		p.mu.Unlock()
	}
	return p
}

// quartiles are the 25th, 50th and 75th percentiles of xs.
func quartiles(xs []float64) (q1, q2, q3 float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(f float64) float64 { return s[int(f*float64(len(s)-1)+0.5)] }
	return at(0.25), at(0.5), at(0.75)
}

// BenchmarkEngineRatios compares the two Local engines in one run, interleaved, so a
// CPU shared with other work skews both alike: the warm seed chart on the zygote and
// on the agent, each against the fork floor measured beside it, and two concurrent
// callers on two sandboxes of each. It reports medians and quartiles of per-pair
// ratios, not wall clock. Run it with -benchtime 1x.
func BenchmarkEngineRatios(b *testing.B) {
	const pairs, throughputJobs, rounds = 15, 20, 4
	ctx := context.Background()
	forkFloor := startForkFloor(b)
	zp := benchPool(b, 1, 1)
	ap := agentBenchPool(b, 1, 1)
	run := func(p *Pool) time.Duration {
		t := time.Now()
		r, err := sandbox.Run(ctx, p, "bench", sandbox.Request{Code: seedBarChart})
		if err != nil || !r.Success || len(r.Files) != 1 {
			b.Fatalf("run: %v %+v", err, r)
		}
		return time.Since(t)
	}
	var agentZygote, zygoteFork, agentFork []float64
	// Both engines quiet before each run: a zygote re-arming (its warm-up render) or
	// an agent starting its spare kernel would take the CPU from the run measured.
	quiet := func() { waitArmed(b, zp); waitAgentsWarm(b, ap) }
	for i := 0; i < pairs; i++ {
		quiet()
		t := time.Now()
		forkFloor.render(b)
		fk := time.Since(t)
		quiet()
		zy := run(zp)
		quiet()
		ag := run(ap)
		agentZygote = append(agentZygote, float64(ag)/float64(zy))
		zygoteFork = append(zygoteFork, float64(zy)/float64(fk))
		agentFork = append(agentFork, float64(ag)/float64(fk))
	}
	closeAndCheck(b, zp)
	closeAndCheck(b, ap)

	zp2, ap2 := benchPool(b, 2, 2), agentBenchPool(b, 2, 2)
	forkFloor2 := startForkFloor(b)
	var tpZygote, tpAgent []float64
	for r := 0; r < rounds; r++ {
		fk := concurrently(throughputJobs, func(w int) {
			if w == 0 {
				forkFloor.render(b)
			} else {
				forkFloor2.render(b)
			}
		})
		zy := concurrently(throughputJobs, func(int) { run(zp2) })
		waitArmed(b, zp2)
		ag := concurrently(throughputJobs, func(int) { run(ap2) })
		waitAgentsWarm(b, ap2)
		tpZygote = append(tpZygote, zy/fk)
		tpAgent = append(tpAgent, ag/fk)
	}
	report := func(name string, xs []float64) {
		q1, q2, q3 := quartiles(xs)
		b.ReportMetric(q2, name)
		b.Logf("%-28s median %.3f  quartiles %.3f–%.3f  (%d samples: %.3f)", name, q2, q1, q3, len(xs), xs)
	}
	report("warm-agent/warm-zygote", agentZygote)
	report("warm-zygote/fork-floor", zygoteFork)
	report("warm-agent/fork-floor", agentFork)
	report("tp-zygote/(2/fork-floor)", tpZygote)
	report("tp-agent/(2/fork-floor)", tpAgent)
}
