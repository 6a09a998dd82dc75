// Package bos is crus's view of the Boot Orchestration Service (BOS) of HPE
// Cray and OpenCHAMI systems: the [Orchestrator] interface through which
// crus reboots a step's nodes with a session template and follows each
// node's outcome.
//
// A crus reboot is one BOS session (operation "reboot") with a deterministic
// name and a limit, followed from pending through running to complete.
// BOS reads HSM group membership while a session is pending, so crus does
// not change the upgrading group until the session is running.
package bos
