package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/text"
)

// Problem is an RFC 7807 problem details body, as the original service
// answered errors with. The cray CLI prints "title: detail".
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists every problem with the request's fields (400).
	Errors []FieldProblem `json:"errors,omitempty"`
	// Conflicts names the sessions in progress that hold what the request
	// asked for (409).
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// FieldProblem is one problem with one field of a request body.
type FieldProblem struct {
	Field   string `json:"field"`
	Value   any    `json:"value,omitempty"`
	Problem string `json:"problem"`
}

// Conflict is what one session in progress holds of what a refused create
// asked for.
type Conflict struct {
	Session string   `json:"session"`
	Nodes   []string `json:"nodes,omitempty"`
	Labels  []string `json:"labels,omitempty"`
}

// Error makes a Problem an error, for clients that decode one.
func (p *Problem) Error() string {
	if p.Detail == "" {
		return p.Title
	}
	return p.Title + ": " + p.Detail
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func problemf(status int, format string, args ...any) *Problem {
	return &Problem{Status: status, Detail: fmt.Sprintf(format, args...)}
}

// fieldErrors returns every *crus.FieldError in err's tree, in order.
func fieldErrors(err error) []*crus.FieldError {
	var out []*crus.FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*crus.FieldError); ok {
			out = append(out, fe)
			return
		}
		if me, ok := err.(*multierror.Error); ok {
			for _, e := range me.WrappedErrors() {
				walk(e)
			}
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func fieldProblems(fes []*crus.FieldError) []FieldProblem {
	out := make([]FieldProblem, len(fes))
	for i, fe := range fes {
		out[i] = FieldProblem{Field: fe.Field, Value: fe.Value, Problem: fe.Problem}
	}
	return out
}

func invalid(fes []*crus.FieldError) *Problem {
	parts := make([]string, len(fes))
	for i, fe := range fes {
		parts[i] = fe.Field + " " + fe.Problem
	}
	return &Problem{
		Status: http.StatusBadRequest,
		Title:  "Invalid session",
		Detail: strings.Join(parts, "; "),
		Errors: fieldProblems(fes),
	}
}

// createProblem turns an error of Executor.Create into the answer: 400
// for the spec's problems, 409 for a reservation conflict, 422 for another
// pre-flight refusal, 503 when a backend could not be asked.
func createProblem(err error) *Problem {
	if fes := fieldErrors(err); len(fes) > 0 {
		return invalid(fes)
	}
	var re *crus.ReservedError
	if errors.As(err, &re) {
		p := &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: re.Error()}
		for _, c := range re.Conflicts {
			p.Conflicts = append(p.Conflicts, Conflict{Session: c.Session, Nodes: c.Nodes, Labels: c.Labels})
		}
		return p
	}
	if errors.Is(err, crus.ErrReserved) {
		return &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: err.Error()}
	}
	if errors.Is(err, crus.ErrPreflight) {
		return &Problem{Status: http.StatusUnprocessableEntity, Title: "Pre-flight check failed", Detail: err.Error()}
	}
	return backendProblem(err)
}

// sessionProblem turns an error of a call on one session into the answer.
func sessionProblem(err error, id string) *Problem {
	switch {
	case errors.Is(err, crus.ErrSessionNotFound):
		return problemf(http.StatusNotFound, "no session %s", text.Cap(id, maxEcho))
	case errors.Is(err, crus.ErrSessionDone):
		return &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: fmt.Sprintf("session %s has completed", text.Cap(id, maxEcho))}
	case errors.Is(err, crus.ErrConflict):
		return &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: err.Error()}
	}
	return backendProblem(err)
}

func backendProblem(err error) *Problem {
	if errors.Is(err, crus.ErrCorruptSession) {
		return &Problem{Status: http.StatusInternalServerError, Detail: err.Error()}
	}
	return &Problem{Status: http.StatusServiceUnavailable, Detail: err.Error()}
}
