package bos

import (
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/rest"
)

// ErrAmbiguous is returned by the BOS v1 client when a session create got
// no clear answer and more than one new session of the template appeared
// meanwhile, so that it cannot tell which (if any) is its own. BOS v1
// sessions have no client-chosen name to look them up by.
var ErrAmbiguous = batch.NewPermanent("bos: cannot tell whether the session was created")

// APIError is an error of the HTTP clients: a BOS answer that is not a
// success, or no answer at all. errors.As(err, &apiErr) gives the status and
// the server's problem details; errors.Is matches Kind (ErrTemplateNotFound,
// ErrSessionNotFound, ErrSessionExists, ErrInvalidRequest or
// auth.ErrUnauthorized) and Err (the cause when no answer came, such as
// context.DeadlineExceeded).
type APIError struct {
	// Op is what the client was doing, such as
	// "create session \"crus-x-1\"".
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
	return rest.ErrorText("bos", e.Kind, e.Op, e.StatusCode, e.Title, e.Detail, e.Err)
}

// Unwrap returns the cause and the sentinel, so that errors.Is matches
// either.
func (e *APIError) Unwrap() []error { return rest.ErrorUnwrap(e.Err, e.Kind) }

func statusError(op string, resp *rest.Response, kind error) *APIError {
	p := resp.Problem()
	return &APIError{Op: op, StatusCode: resp.Status, Title: p.Title, Detail: p.Detail, Kind: rest.AnswerKind(resp.Status, kind)}
}

func callError(op string, err error) *APIError { return &APIError{Op: op, Err: err} }

// unexpected is the error of an answer whose status the client does not
// expect: 4xx are refusals, others are failures retried by crus.
func unexpected(op string, resp *rest.Response) *APIError {
	var kind error
	if rest.Refused(resp.Status) {
		kind = ErrInvalidRequest
	}
	return statusError(op, resp, kind)
}
