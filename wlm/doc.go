// Package wlm defines what crus needs from a workload manager (Slurm, PBS,
// Flux, ...): the [Manager] interface, the [Node] state model, and optional
// capabilities found by type assertion.
//
// crus drives a node through drain, reboot and resume. It reads nodes in
// batches with [Manager.Nodes] and relies on the readings of [Node]:
// [Node.Draining] (drained, jobs still running), [Node.Drained] (safe to
// reboot), [Node.InService] and [Node.BootTime] (to prove a reboot happened).
//
// # Through a reboot
//
// crus does not ask the workload manager to reboot nodes: a boot
// orchestrator (package bos) powers them off and boots them behind its
// back, and the workload manager learns of it only through the node's
// agent (slurmd, pbs_mom, ...). An adapter must report what follows
// faithfully, because crus reads nothing else:
//
//   - While the node is down, once the workload manager has noticed
//     (Slurm: at its next failed ping; measured 14 s after the stop with
//     SlurmdTimeout=10, 35 s with 60), the node is not Responding (and so not
//     InService); its State is usually StateDown. Until then it reads as
//     before. crus never takes these readings as proof that a node
//     rebooted.
//   - When the node is back, its agent answers again and, with
//     [BootTimeReporter], BootTime is the new boot: later than the moment
//     it was powered off, to the second. A BootTime the workload manager
//     does not know yet (Slurm says "None" for a moment) is zero, never an
//     old value. crus proves the reboot by this time against the time it
//     asked for the reboot.
//   - A drain or a fail set before the reboot survives it, with its
//     Reason: the node reads Drain (or Fail) until [Manager.Resume].
//     Its base state may be down (Slurm: DOWN+DRAIN, "Node unexpectedly
//     rebooted", when the reboot was not Slurm's own).
//   - After it is resumed, the workload manager may take the node out of
//     service once more as its agent registers again (Slurm: a second
//     registration whose boot time, derived from the uptime, is a second
//     later counts as one more unexpected reboot: DOWN again). Resume
//     must succeed on such a node too; crus resumes a rebooted node until
//     it reads in service.
//   - Jobs: crus has the orchestrator reboot only nodes it saw drained and
//     idle; a job still on a node when it powers off is lost.
//
// The conformance suite checks these points when its harness can reboot
// a node (wlmtest.Rebooter).
//
// # Writing an adapter
//
// Implement [Manager] (four methods, all batch-shaped and ctx first), map
// your workload manager's states onto [Node], and follow the error contract
// documented on [Manager]: unknown nodes are *batch.NodeError values wrapping
// [ErrNodeNotFound], and every call is idempotent. Implement [Describer] so
// that crus's messages use your workload manager's words, not [Neutral]
// ones. Then prove it with the public conformance suite in package
// wlm/wlmtest:
//
//	func TestConformance(t *testing.T) {
//		wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
//			return newMyHarness(ctx, t)
//		})
//	}
//
// The in-memory implementation in crus's internal/fake package and the
// Slurm adapters in wlm/slurm run the same suite. To run whole sessions on
// your adapter, with an in-memory HSM and boot orchestrator, use package
// crustest (World.UseManager).
package wlm
