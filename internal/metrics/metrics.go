// Package metrics defines the operator's Prometheus metrics (the ones the seed asks to
// track) and registers them once on controller-runtime's registry, which the manager
// serves on its metrics endpoint.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// SandboxAcquireSeconds is how long claiming a sandbox from a pool took.
	SandboxAcquireSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vizops_sandbox_acquire_duration_seconds",
		Help:    "Time to claim a sandbox from a pool.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"backend"})

	// SandboxCreationSeconds is how long a sandbox took to become ready.
	SandboxCreationSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vizops_sandbox_creation_duration_seconds",
		Help:    "Time for a new sandbox to become ready (warm).",
		Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30},
	}, []string{"backend"})

	// ExecutionSeconds is how long code ran in a sandbox.
	ExecutionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vizops_execution_duration_seconds",
		Help:    "Wall-clock time of code executions in sandboxes.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"backend", "outcome"})

	// RequestsTotal counts finished requests by phase and reason; success and
	// failure rates are ratios of it.
	RequestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vizops_requests_total",
		Help: "Finished VisualizationRequests by phase and reason.",
	}, []string{"phase", "reason"})

	// RetriesTotal counts transient failures that led to a retry, by reason.
	RetriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vizops_retries_total",
		Help: "Transient execution failures that were retried.",
	}, []string{"reason"})

	// QueueDepth is how many requests wait for a slot.
	QueueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vizops_queue_depth",
		Help: "Requests waiting in the admission queue.",
	})

	// ExecutionsInFlight is how many requests are being executed now.
	ExecutionsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vizops_executions_in_flight",
		Help: "Requests holding a slot and running now.",
	})

	// ChartRequestsTotal counts detected chart types (the most requested types).
	ChartRequestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vizops_chart_requests_total",
		Help: "Requests by detected chart type and tool.",
	}, []string{"chart_type", "tool"})

	// CodegenTotal counts how the executed code came about.
	CodegenTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vizops_codegen_total",
		Help: "Code generation outcomes by path: Template, Model, Repaired, TemplateFallback, User.",
	}, []string{"path"})

	// E2BAPIRequestsTotal counts calls to the E2B REST API by operation (create,
	// kill, set_timeout, list) and HTTP status code ("error" when no answer came).
	E2BAPIRequestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vizops_e2b_api_requests_total",
		Help: "Calls to the E2B API by operation and HTTP status code.",
	}, []string{"op", "code"})
)

func init() {
	crmetrics.Registry.MustRegister(
		SandboxAcquireSeconds, SandboxCreationSeconds, ExecutionSeconds,
		RequestsTotal, RetriesTotal, QueueDepth, ExecutionsInFlight,
		ChartRequestsTotal, CodegenTotal, E2BAPIRequestsTotal,
	)
}
