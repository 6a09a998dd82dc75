// Package slurm holds the Slurm adapters of wlm.Manager: [CLI], which runs
// scontrol and squeue, and [REST], which talks to slurmrestd. Both pass the
// conformance suite of package wlm/wlmtest against a real Slurm cluster
// (see package slurmtest), implement wlm.BootTimeReporter,
// wlm.JobEnder, wlm.Scheduler and wlm.Steerer, and read every state Slurm
// 22.05 to 24.05 reports.
//
// # scontrol
//
// [CLI] runs the programs with exec (never through a shell), with
// SLURM_TIME_FORMAT=%s and TZ=UTC so that times need no guessing, and
// SLURM_CONF from [Config.SlurmConf]. Many nodes go into one command as a
// hostlist expression ("nid[000001-000050,000077]", see
// [CompressHostlist]). Every node name is checked by [ValidateName] before
// it reaches a command line: a name such as "nid1 State=RESUME" or "-h" is
// refused, for that node, with wlm.ErrInvalidArgument.
//
//	m, err := slurm.NewCLI(slurm.Config{SlurmConf: "/etc/slurm/slurm.conf"})
//
// # Reasons
//
// A drain or fail reason is cleaned before it is sent: control characters
// (a traceback's newlines and tabs) become spaces and runs of blanks
// collapse, so a reason from a backend's error message is taken, not
// refused. A reason longer than [MaxReason] bytes is refused for each node
// of the call with wlm.ErrInvalidArgument (permanent): Linux refuses any
// single argument over 128 KiB, and such a command could never run. A
// reason that starts or ends with a double quote is quoted again, since
// scontrol strips one at each end.
//
// # slurmrestd
//
// [REST] reads nodes and jobs over HTTP with JWT authentication
// (X-SLURM-USER-NAME, X-SLURM-USER-TOKEN), in API v0.0.38 as Slurm 22.05
// serves it or v0.0.39 to v0.0.41 of later Slurm, configured or discovered
// from /openapi/v3. slurmrestd before 23.02 serves nodes read-only (node
// updates answer 405), so there Drain, Resume and Fail go through a [CLI]
// given as [RESTConfig.Fallback]; from v0.0.39 on they are POSTs to
// /slurm/vX/node/{name}. A refused token is an error matching [ErrAuth]:
// slurmrestd answers 401 without a token and, in 22.05, 500 "Unspecified
// error" for a bad or expired one. The token refused is then passed to
// the [TokenSource] ([RefusedToken]) so that it gets another at once.
//
// # Steering
//
// Slurm gives a job the nodes of lowest weight that can run it, so both
// adapters implement wlm.Steerer with node weights. [CLI.Steer] reads the
// weights (one `scontrol show node`), adds [SteerWeight] to the weight of
// each node it makes the scheduler's last choice, or takes it off again
// to give the node back its place, with one `scontrol update
// NodeName=<hostlist> Weight=<w>` per weight to set; a node already as
// asked costs no update. Every node gets the same offset, so the site's
// order stands among the nodes steered alike; the site's own weights must
// stay below SteerWeight (2^23, since Slurm 22.05 tells weights apart
// only below 2^24). [REST] steers through [RESTConfig.Fallback]:
// slurmrestd 22.05 cannot set a weight. Slurm updates nodes only for
// root, its SlurmUser and its administrators (AdminLevel=Admin); anyone
// else gets wlm.ErrPermissionDenied.
//
// A weight set by scontrol is not slurm.conf's: `scontrol reconfigure`
// puts slurm.conf's back, and so does a restart of slurmctld unless it is
// started with -R and its saved state. That is harmless: the node is
// simply no longer steered, and a new job may go there again. Both
// adapters read the weight with every node (`scontrol show node`, and
// slurmrestd's "weight") and report the node's place in
// wlm.Node.Steering: SteeringLast from SteerWeight to 2*SteerWeight-1,
// SteeringNone below, SteeringUnknown above or without a weight. So a
// session sees a reconfigure at its next poll and steers its nodes again.
//
// # Control-plane cost
//
// A poll costs one command or one request for all the nodes of a step,
// whatever their number. Per call, when nothing goes wrong:
//
//	                 CLI (commands)                 REST (requests)
//	Nodes            1  scontrol show node          1  GET /nodes
//	Drain, Fail      1  scontrol update             v0.0.38: the CLI's; v0.0.39+: 1 GET + 1 POST per node
//	Resume           1  show, +1 update if needed   v0.0.38: the CLI's; v0.0.39+: 1 GET + 1 POST per node to resume
//	JobEnds          1  squeue                      2  GET /nodes, GET /jobs
//	Steer            1  show, +1 update per weight  the CLI's
//
// The first REST call also reads /openapi/v3 once, unless
// [RESTConfig.Version] is set.
//
// # Unknown nodes
//
// scontrol refuses a whole hostlist with one message ("Invalid node name
// specified") and stops at the first unknown name, having updated the
// nodes before it; squeue refuses the whole list. So when an update or
// squeue fails, [CLI] reads the nodes (one more command), reports each
// unknown one as a *batch.NodeError wrapping wlm.ErrNodeNotFound, runs the
// command again for the known nodes the first run missed, and gives every
// node still not as asked Slurm's own message: a batch with an unknown
// node costs up to 4 commands instead of 1, and only then. Reads need
// nothing of the sort: scontrol prints "Node X not found" per unknown name
// and slurmrestd's node list simply lacks it.
package slurm
