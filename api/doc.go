// Package api serves crus over HTTP: the REST API of the original Compute
// Rolling Upgrade Service, unchanged, and crus's extensions beside it. It is
// a thin layer over the public crus API (Executor and Plan): every request
// is one or two calls a site tool could make itself.
//
// # Mounting
//
// Handler serves paths relative to its root; the original service was
// reached at /apis/crus through the API gateway:
//
//	hub := api.NewHub()
//	ex, err := crus.NewExecutor(groups, manager, boot, crus.Config{Store: st, OnEvent: hub.Publish})
//	h, err := api.New(ex, api.Config{Events: hub})
//	mux.Handle("/apis/crus/", http.StripPrefix("/apis/crus", h))
//
// Handler routes requests itself and never redirects: a POST to
// /apis/crus/session is a create, not a redirect that common clients turn
// into a GET of the list.
//
// # The original API
//
//	POST   /session              create (exactly the six original fields) → 201 SessionStatus
//	GET    /session              list → 200 [SessionStatus]
//	GET    /session/{upgrade_id} one → 200 SessionStatus, 404
//	DELETE /session/{upgrade_id} cancel → 200 SessionStatus, 404
//
// The bodies are those of the original OpenAPI document (crus.Status);
// errors are RFC 7807 problem details (application/problem+json), whose
// "title: detail" the cray CLI prints. A spec with problems is refused with
// 400 and one entry per problem in "errors"; a pre-flight refusal (a
// missing group or template, a group that must be empty) with 422; a
// session whose nodes or groups another session in progress holds with 409,
// naming the holder in "conflicts". A refused request changes nothing.
//
// # Extensions
//
// The extensions are described by the OpenAPI document served at
// GET /openapi.yaml (OpenAPI, the embedded file openapi.yaml):
//
//	POST   /sessions                  create with the rollout options (crus.Spec) → the full record
//	GET    /sessions                  summaries (counts, stage, step) of every session
//	GET    /sessions/{id}             the full record (crus.Session: per-node progress)
//	DELETE /sessions/{id}             cancel → summary
//	POST   /sessions/{id}/pause       and /resume, /approve → summary
//	GET    /sessions/{id}/description summary with the failed and skipped nodes and their reasons
//	GET    /sessions/{id}/nodes       compact per-node state, for grids of 10,000 nodes
//	GET    /sessions/{id}/plan        what crus would do next (crus.Plan on a fresh observation)
//	POST   /plan                      dry run of a create: pre-flight and the first decision, nothing stored
//	GET    /sessions/{id}/events      Server-Sent Events of one session
//	GET    /events                    Server-Sent Events of every session
//
// # Authentication
//
// Config.Auth decides who may call. Gateway trusts every request, as the
// original service did behind the API gateway; JWT verifies a bearer token
// against the keys of a JWKS URL (Keycloak's certs endpoint).
//
// Whatever the Authenticator, a request that changes something (POST,
// DELETE) and that a browser sent from another site's page is refused with
// 403 (net/http's CrossOriginProtection: the Sec-Fetch-Site header, or an
// Origin header naming another host than the request's). Behind the
// gateway every request is trusted, so without this check any web page an
// admin opened on the management network could create a session — a
// rolling reboot — through their browser. Clients that are not browsers
// send neither header and are not affected.
package api
