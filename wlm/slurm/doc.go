// Package slurm will hold the Slurm adapters of wlm.Manager: one that runs
// scontrol, sinfo and squeue (no shell), and one that talks to slurmrestd.
// Both must pass the conformance suite in wlm/wlmtest against a real Slurm
// cluster.
package slurm
