// Package bos is crus's view of the Boot Orchestration Service (BOS) of HPE
// Cray and OpenCHAMI systems: the [Orchestrator] interface through which
// crus reboots a step's nodes with a session template and follows each
// node's outcome.
//
// A crus reboot is one BOS session (operation "reboot") with a deterministic
// name and a limit, followed from pending through running to complete.
// BOS reads HSM group membership while a session is pending, so crus
// keeps a session's nodes in the upgrading group until it is running; in
// the original algorithm, or with boot_limit "label", it does not change
// the group at all until then; otherwise it may add and remove other
// nodes meanwhile, since each boot is limited to its own nodes.
//
// # The boot orchestrator and the workload manager
//
// The orchestrator reboots nodes without telling the workload manager;
// crus keeps the two in step. Before a reboot, crus drains the nodes in
// the workload manager and waits until they run nothing: an orchestrator
// must not itself wait for, or kill, jobs. During the reboot the workload
// manager sees the node's agent stop answering (when it notices: Slurm
// at its next failed ping), and afterwards the agent registers again with
// a newer boot time; the drain crus set survives, so no job lands on the
// node until crus has seen the new boot time and resumes it. A node that
// boots but never registers again is failed by crus after return_timeout.
// Package wlm states what an adapter must report through all this.
//
// # The HTTP clients
//
// [Client] speaks BOS v2, the current API:
//
//	boot, err := bos.New(bos.Config{
//		BaseURL: "https://api-gw-service-nmn.local/apis/bos",
//		CAFile:  "/etc/pki/trust/anchors/platform-ca-certs.crt",
//		Tokens:  tokens, // an auth.TokenSource
//	})
//
// It creates sessions with POST /v2/sessions under the caller's name,
// looking the name up first (GET /v2/sessions/{name}) and again after any
// create that got no clear answer, so that a retried Reboot never creates a
// second session; it reads outcomes from GET /v2/components?ids=... (or
// ?session=, for lists longer than BOS takes): stable is booted, failed is
// failed with BOS's error, left on_hold when the session completed is
// failed (a component's status_override, when set, is its status). It
// follows a session under the name BOS's answer gives it, and takes a
// session it created or read that BOS no longer has for one deleted:
// complete, never created again.
//
// [V1Client] speaks BOS v1 (POST /v1/session and its status), for systems
// older than CSM 1.6 where v2 is missing. BOS v1 names sessions itself;
// give it a [V1SessionStore] that outlives the process ([FileV1Store]) so
// that a replayed Reboot finds the session it created.
//
// # Errors
//
// Failures of the API are [*APIError] values. errors.Is matches their kind
// (ErrTemplateNotFound, ErrSessionNotFound, ErrSessionExists,
// ErrInvalidRequest, auth.ErrUnauthorized) and the cause when no answer
// came; errors.As gives the HTTP status and the server's problem details.
// Requests that are safe to repeat are retried on network errors, timeouts,
// malformed answers and 429, 500, 502, 503 and 504 answers
// (Config.Retries).
//
// The conformance suite of package bos/bostest holds every Orchestrator,
// both clients included, to the same contract.
package bos
