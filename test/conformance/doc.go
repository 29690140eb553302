// Package conformance checks vizops's sandbox-agent against E2B's official clients:
// e2b-js/ pins @e2b/code-interpreter (package.json and its lockfile) and
// official_client_test.go drives the agent through it (debug mode), gateway_test.go
// drives the E2B-compatible gateway with it in its normal mode (docs/gateway.md), on
// envtest. Run with make test-conformance.
package conformance
