// Package fake is an in-memory HPC system for crus's tests, examples and
// simulations: HSM groups and components, a Boot Orchestration Service and a
// Slurm-like workload manager, all sharing one virtual clock. It is for
// tests and simulations only and must never drive real nodes.
//
// A World is a discrete-event simulation: nothing happens until time is
// advanced (World.Advance, or World.After, through which an Executor that
// uses the World as its Clock advances it while it waits). Jobs end, boot
// sessions start, nodes reboot and come back at their simulated times.
//
// Every backend records its calls (World.Calls) and can be made to fail:
// per call (World.FailNext: transient or permanent errors) or per node
// (World.SetFaults: boot failure, never returning, refusing to drain, a
// drain slowed by a job stuck completing). The
// world also checks the invariants crus promises: it records every reboot
// of a node that still ran jobs (World.Violations), the most nodes out of
// service because of crus at one instant (World.MaxOut), and which nodes
// any call touched (World.Touched).
package fake
