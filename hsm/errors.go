package hsm

import (
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/rest"
)

// More sentinel errors, used by the HTTP client.
var (
	// ErrMemberConflict: HSM refused a member because it is already in
	// another group with the same exclusiveGroup (HTTP 409 that is not
	// "already a member").
	ErrMemberConflict = batch.NewPermanent("hsm: member conflicts with an exclusive group")
	// ErrNoNID: the component exists but HSM holds no NID for it.
	ErrNoNID = batch.NewPermanent("hsm: component has no NID")
	// ErrInvalidRequest: HSM refused the request as malformed (HTTP 400
	// that no more specific sentinel explains).
	ErrInvalidRequest = batch.NewPermanent("hsm: request refused as invalid")
)

// APIError is an error of the HTTP client: an HSM answer that is not a
// success, or no answer at all. errors.As(err, &apiErr) gives the status and
// the server's problem details; errors.Is matches Kind (ErrGroupNotFound,
// ErrComponentNotFound, ... or auth.ErrUnauthorized) and Err (the cause when
// no answer came, such as context.DeadlineExceeded).
type APIError struct {
	// Op is what the client was doing, such as
	// "add x3000c0s19b1n0 to group \"blue\"".
	Op string
	// StatusCode is the HTTP status; 0 if no answer came.
	StatusCode int
	// Title and Detail are the RFC 7807 problem details of the answer (or
	// its text, cleaned and cut, if it was not problem+json).
	Title, Detail string
	// Kind is the sentinel this error matches, or nil.
	Kind error
	// Err is the cause when no (valid) answer came, or nil.
	Err error
}

func (e *APIError) Error() string {
	return rest.ErrorText("hsm", e.Kind, e.Op, e.StatusCode, e.Title, e.Detail, e.Err)
}

// Unwrap returns the cause and the sentinel, so that errors.Is matches
// either.
func (e *APIError) Unwrap() []error { return rest.ErrorUnwrap(e.Err, e.Kind) }

// statusError builds the APIError of an answer, with kind as its sentinel;
// authentication failures get auth.ErrUnauthorized whatever kind says.
func statusError(op string, resp *rest.Response, kind error) *APIError {
	p := resp.Problem()
	return &APIError{Op: op, StatusCode: resp.Status, Title: p.Title, Detail: p.Detail, Kind: rest.AnswerKind(resp.Status, kind)}
}

// callError builds the APIError of a request that got no usable answer.
func callError(op string, err error) *APIError {
	return &APIError{Op: op, Err: err}
}

// unexpected is the error of an answer whose status the client does not
// expect: 4xx are refusals, others are failures retried by crus.
func unexpected(op string, resp *rest.Response) *APIError {
	var kind error
	if rest.Refused(resp.Status) {
		kind = ErrInvalidRequest
	}
	return statusError(op, resp, kind)
}
