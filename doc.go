// Package crus upgrades HPC compute nodes to a new boot image a few at a
// time while the cluster keeps running jobs: the Compute Rolling Upgrade
// workflow of HPE Cray systems (HSM groups, workload-manager drain, BOS
// reboot, verify, resume), with a hard cap on how many nodes are out of
// service at once.
//
// A session takes the members of a starting group and, step by step, puts
// at most Spec.StepSize of them in the upgrading group, drains them in the
// workload manager, reboots them with a boot session template once their
// jobs have ended, checks that each really rebooted (a boot time later than
// the reboot request) and resumes it. Nodes that fail to boot or do not
// come back in time go to the failed group and are failed in the workload
// manager with the reason. Deleting a session leaves the nodes it has not
// touched in service, resumes the ones drained but not yet rebooting, and
// sees the rebooting ones through.
//
// # Design
//
// [Plan] is a pure function: (session record, observation) → decision. It
// does no I/O, reads no clock and is deterministic. The [Executor] does the
// rest: it observes the world through three small batch-shaped interfaces
// (wlm.Manager, hsm.GroupStore, bos.Orchestrator), plans, records the
// decision in a [Store], acts, and records the results. The loop is
// level-triggered: a node's phase is an intent, and whenever the world does
// not show it in effect the planner issues its action again, so a lost
// call, a crash or a restart is repaired by the next observation.
//
// # Usage
//
// The caller's duties, in order:
//
//  1. Build the backends: a wlm.Manager (wlm/slurm for Slurm), an
//     hsm.GroupStore and a bos.Orchestrator (the hsm and bos clients).
//  2. Create an Executor with [NewExecutor]. Give Config.Store a durable
//     Store to survive restarts (store/filestore on one machine,
//     store/etcdstore for several replicas), Config.Logger to see what it
//     does, and Config.OnEvent to follow progress. A long-running
//     controller runs a [Driver], which runs every session in progress of
//     the store (as one replica of several on a [Leaser] such as etcd).
//  3. Call [Executor.Create] with a [Spec]. It checks the spec and the
//     world (groups, template, nodes) and records the session without
//     touching any node; a refusal matches [ErrPreflight] or
//     [ErrInvalidSpec] and lists every problem.
//  4. Call [Executor.Run] with the session's id. It returns when the
//     session has completed. If ctx is cancelled, or the process dies,
//     call Run again (from any executor on the same store): it observes the
//     world again and carries on.
//  5. To cancel, call [Executor.Delete]; Run finishes the cancellation.
//     Deleting a completed session removes its record.
//  6. To hold a session, call [Executor.Pause] (nodes in flight finish,
//     nothing new starts) and [Executor.Resume]; a spec with
//     canary_approval waits after its canary batches for
//     [Executor.Approve].
//
// # Strategies
//
// [Rollout], part of the Spec and persisted with the session, chooses how
// nodes are picked and paced. Its zero value is the original algorithm:
// fixed slices of the sorted list, each step rebooted in one boot session
// once its slowest node is drained. The "rolling" strategy keeps at most
// upgrade_step_size nodes out of service at any instant, boots each node as
// soon as it is drained and takes the next as soon as one returns; the
// "job_end" order takes first the nodes whose jobs are expected to end
// soonest (by the time limits of wlm.JobEnder). A drain timeout puts back
// nodes whose jobs outlast it, a failure budget aborts a session that fails
// too many nodes (leaving the rest in service), canary batches go first,
// and maintenance windows restrict when new nodes are taken. The
// "scheduled" strategy gives each pending node a slot (the node expected
// free first gets the first place to come free) and books the nodes due
// soon with the workload manager (wlm.Scheduler: Slurm maintenance
// reservations, named crus-<session id>-<n>, listed every
// round (only names of exactly that form are the session's) and removed
// before the session ends), so that its scheduler starts
// on them only jobs that end before their slot; where the workload
// manager can also steer (wlm.Steerer: Slurm node weights), the nodes
// still to take are its last choice for new jobs while the session runs,
// so that a job that arrives goes to a node already upgraded rather than
// hold back one that must still reboot (every node has its place back
// before the session is recorded done). The cap and every other invariant
// hold for every combination.
//
// Job end times come from wlm.JobEnder (for Slurm, start + time limit). To
// rank by predicted ends instead, where limits say little, give the
// executor a Manager whose JobEnds asks a wlm.Predictor (see its doc).
//
// The caller must not act on the session's nodes or groups behind crus's
// back; if an administrator drains or fails a node for another reason,
// crus leaves it alone and records it as skipped.
//
// # Records
//
// A [Session] serialises to the record of the original CRUS API
// (upgrade_id, state, completed, messages and the six parameters) plus a
// "progress" object with the step, the stage and one record per node: its
// phase, its outcome (upgraded, failed, skipped or untouched), the reason
// and the time of each transition.
package crus
