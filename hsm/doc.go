// Package hsm is crus's view of the Hardware State Manager (HSM) of HPE Cray
// and OpenCHAMI systems: the group store that holds the session's starting,
// upgrading and failed groups, and the lookup of node IDs (NIDs) from which
// workload-manager node names are derived.
//
// [GroupStore] is the interface crus consumes; [GroupCreator] and
// [NIDResolver] are optional capabilities found by type assertion. Labels
// and xnames are checked with [ValidateLabel] and [ValidateXName] before
// any request is made.
//
// # The HTTP client
//
// [Client] implements all three over the HSM v2 REST API:
//
//	groups, err := hsm.New(hsm.Config{
//		BaseURL: "https://api-gw-service-nmn.local/apis/smd/hsm/v2",
//		CAFile:  "/etc/pki/trust/anchors/platform-ca-certs.crt",
//		Tokens:  &auth.ClientCredentials{TokenURL: ..., ClientID: "admin-client", ClientSecret: ...},
//	})
//
// Writes read the group first (GET /groups/{label}/members): a missing group
// fails the call before anything changes, and members already in (or out
// of) the group cost no request. OpenCHAMI's HSM takes the whole new member
// list in one PUT /groups/{label}/members; HPE Cray's HSM has no bulk call,
// so the client sends one POST or DELETE per node, Config.Concurrency at a
// time. A 409 answer to an add means "already a member" or a clash with an
// exclusive group; the client reads the group again to tell them apart
// ([ErrMemberConflict]). NIDs come from POST /State/Components/Query, which
// silently leaves unknown ids out: they are reported per node.
//
// # Errors
//
// Failures of the API are [*APIError] values. errors.Is matches their kind
// (ErrGroupNotFound, ErrComponentNotFound, ErrInvalidXName,
// ErrMemberConflict, ErrGroupExists, auth.ErrUnauthorized, ...) and the cause
// when no answer came (context.DeadlineExceeded, a TLS error); errors.As
// gives the HTTP status and the server's RFC 7807 problem details. Nodes
// refused one by one are *batch.NodeError values. Requests that are safe to
// repeat are retried on network errors, timeouts, malformed answers and
// 429, 500, 502, 503 and 504 answers (Config.Retries); what is still
// failing is returned for crus to retry.
//
// The conformance suite of package hsm/hsmtest holds every GroupStore,
// this client included, to the same contract.
package hsm
