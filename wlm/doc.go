// Package wlm defines what crus needs from a workload manager (Slurm, PBS,
// Flux, ...): the [Manager] interface, the [Node] state model, and optional
// capabilities found by type assertion.
//
// crus drives a node through drain, reboot and resume. It reads nodes in
// batches with [Manager.Nodes] and relies on the readings of [Node]:
// [Node.Draining] (drained, jobs still running), [Node.Drained] (safe to
// reboot), [Node.InService] and [Node.BootTime] (to prove a reboot happened).
//
// # Writing an adapter
//
// Implement [Manager] (four methods, all batch-shaped and ctx first), map
// your workload manager's states onto [Node], and follow the error contract
// documented on [Manager]: unknown nodes are *batch.NodeError values wrapping
// [ErrNodeNotFound], and every call is idempotent. Then prove it with the
// public conformance suite in package wlm/wlmtest:
//
//	func TestConformance(t *testing.T) {
//		wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
//			return newMyHarness(ctx, t)
//		})
//	}
//
// The in-memory implementation in crus's internal/fake package and the
// Slurm adapters in wlm/slurm run the same suite.
package wlm
