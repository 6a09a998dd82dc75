// Package hsm is crus's view of the Hardware State Manager (HSM) of HPE Cray
// and OpenCHAMI systems: the group store that holds the session's starting,
// upgrading and failed groups, and the lookup of node IDs (NIDs) from which
// workload-manager node names are derived.
//
// [GroupStore] is the interface crus consumes; [GroupCreator] and
// [NIDResolver] are optional capabilities found by type assertion. Labels
// and xnames are checked with [ValidateLabel] and [ValidateXName] before
// any request is made.
package hsm
