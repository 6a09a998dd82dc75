package wlm

import "context"

// Steerer is implemented by a Manager whose scheduler can be told to give
// new work to some nodes only when no other node can take it (Slurm: node
// weights; a job goes to the nodes of lowest weight that can run it).
//
// crus's scheduled strategy makes the nodes it has still to take its
// scheduler's last choice while a session runs: a job that arrives goes
// to a node already upgraded, or idle anyway, rather than to one whose
// reboot it would put off by its whole run time. A node is given its
// place back when crus takes it (it is drained then), when the session
// pauses or stops, and in any case before the session ends.
//
// Steering changes only the order in which the scheduler picks nodes: a
// job that needs every node still gets them, and running jobs are not
// touched. Among nodes steered alike, the order the site gave them
// stands.
type Steerer interface {
	// Steer makes the named nodes the scheduler's last choice for new
	// work (last true), or gives them back the place the site gave them
	// (last false). Steering a node that is already so changes nothing,
	// so it can be called again after a failure or a restart; giving
	// back its place to a node never steered changes nothing either.
	//
	// Unknown nodes follow the Manager error contract (*batch.NodeError
	// wrapping ErrNodeNotFound), the known ones are still steered. A
	// refusal to the user the adapter runs as is ErrPermissionDenied.
	//
	// An adapter whose node reads can tell a node's place reports it in
	// Node.Steering (SteeringLast after Steer with last true,
	// SteeringNone after last false); one that cannot leaves it
	// SteeringUnknown.
	Steer(ctx context.Context, names []string, last bool) error
}
