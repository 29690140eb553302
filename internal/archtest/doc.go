// Package archtest holds tests of the package graph: the capability packages (what
// detects, generates, executes and checks a chart) import no API types and no
// Kubernetes packages, so the in-Pod sandbox-agent links none. It has no code of its
// own.
package archtest
