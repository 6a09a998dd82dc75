// Package e2e holds crus's full-stack tests: the executor drives the HTTP
// clients of package hsm and package bos against the spec-validating HSM
// and BOS test servers, with the in-memory workload manager and simulated
// nodes of internal/fake behind them, all on one virtual clock. It has no
// code of its own.
package e2e
