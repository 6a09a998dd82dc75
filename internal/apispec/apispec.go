// Package apispec holds the published API documents of HSM and BOS (see
// README.md for their sources) and checks HTTP traffic against them: the
// test servers of crus wrap their handlers with Spec.Validate, so that a
// request the document does not allow, or an answer it does not describe,
// fails the test that caused it.
//
// The HSM documents are Swagger 2.0 and are converted to OpenAPI 3 with
// kin-openapi's openapi2conv; the BOS documents are OpenAPI 3.0. Requests
// and answers are validated with kin-openapi's openapi3filter (parameters,
// bodies, content types, status codes). The known differences between the
// documents and the real servers are allowed in mismatches.go, and only
// there.
package apispec

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

//go:embed hsm-openapi.yaml hsm-openchami-openapi.yaml bos-openapi.yaml bos-v1-openapi.yaml
var files embed.FS

// Spec is one API document, ready to validate traffic.
type Spec struct {
	// Name is the document's file name.
	Name string
	// Doc is the document (OpenAPI 3), with the allowances of
	// mismatches.go applied. It must not be changed.
	Doc *openapi3.T
	// Base is the path prefix the document's paths are served under.
	Base string

	router      routers.Router
	unspecified []Unspecified
}

// Unspecified is a request the document lacks but a real server answers,
// and that a client may therefore send (see mismatches.go).
type Unspecified struct {
	Method string
	Path   *regexp.Regexp // matched against the path below Base
	Why    string
}

// The documents, loaded once each.
var (
	hsmSpec       = sync.OnceValues(func() (*Spec, error) { return load("hsm-openapi.yaml", "/apis/smd/hsm/v2", true) })
	openCHAMISpec = sync.OnceValues(func() (*Spec, error) { return load("hsm-openchami-openapi.yaml", "/apis/smd/hsm/v2", true) })
	bosSpec       = sync.OnceValues(func() (*Spec, error) { return load("bos-openapi.yaml", "/apis/bos", false) })
	bosV1Spec     = sync.OnceValues(func() (*Spec, error) { return load("bos-v1-openapi.yaml", "/apis/bos", false) })
)

// HSM returns HPE Cray's HSM v2 document, served under /apis/smd/hsm/v2.
func HSM() (*Spec, error) { return hsmSpec() }

// OpenCHAMI returns OpenCHAMI's HSM v2 document, served under
// /apis/smd/hsm/v2.
func OpenCHAMI() (*Spec, error) { return openCHAMISpec() }

// BOS returns the current BOS document (v2 only), served under /apis/bos.
func BOS() (*Spec, error) { return bosSpec() }

// BOSv1 returns the BOS 2.16 document (v1 and v2), served under /apis/bos.
func BOSv1() (*Spec, error) { return bosV1Spec() }

func load(name, base string, swagger bool) (*Spec, error) {
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var doc *openapi3.T
	if swagger {
		var d2 openapi2.T
		if err := openapi2.UnmarshalFromData(data, &d2); err != nil {
			return nil, fmt.Errorf("apispec: %s: %w", name, err)
		}
		// Swagger 2.0 operations without "produces" inherit the
		// document's (application/json and application/problem+json for
		// HSM); openapi2conv would give them application/json alone.
		for _, item := range d2.Paths {
			for _, op := range item.Operations() {
				if len(op.Produces) == 0 {
					op.Produces = d2.Produces
				}
			}
		}
		if doc, err = openapi2conv.ToV3(&d2); err != nil {
			return nil, fmt.Errorf("apispec: %s: converting to OpenAPI 3: %w", name, err)
		}
	} else {
		loader := openapi3.NewLoader()
		if doc, err = loader.LoadFromData(data); err != nil {
			return nil, fmt.Errorf("apispec: %s: %w", name, err)
		}
	}
	unspecified := allowMismatches(name, doc)
	// The documents' examples disagree with their own schemas in places
	// (an integer example of a string field); examples are not traffic.
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("apispec: %s is not a valid document: %w", name, err)
	}
	// Serve the paths under Base on any host, whatever the document's
	// servers say (the gateway's host, or Kubernetes service names).
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", name, err)
	}
	return &Spec{Name: name, Doc: doc, Base: base, router: router, unspecified: unspecified}, nil
}

// Violation is traffic the document does not allow.
type Violation struct {
	Method, Path string
	// Request tells whether the request (true) or the answer was wrong.
	Request bool
	Status  int // of the answer
	Err     string
}

func (v Violation) String() string {
	if v.Request {
		return fmt.Sprintf("%s %s: request not allowed by the API document: %s", v.Method, v.Path, v.Err)
	}
	return fmt.Sprintf("%s %s: answer %d not allowed by the API document: %s", v.Method, v.Path, v.Status, v.Err)
}

// Validate wraps next: each request is checked before next sees it, and
// each answer of next is checked before the client sees it. A request the
// document does not allow is reported and answered 400 (404 or 405 if it
// names no operation) without reaching next, as a server that validates
// its input would; an answer the document does not allow is reported and
// passed on unchanged. report is called from the request's goroutine.
func (s *Spec) Validate(next http.Handler, report func(Violation)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		route, params, err := s.router.FindRoute(r)
		if err != nil {
			if s.allowed(r) {
				next.ServeHTTP(w, r)
				return
			}
			status := http.StatusNotFound
			if err == routers.ErrMethodNotAllowed {
				status = http.StatusMethodNotAllowed
			}
			report(Violation{Method: r.Method, Path: r.URL.Path, Request: true, Err: err.Error()})
			problem(w, status, "request not in the API document: "+err.Error())
			return
		}
		in := &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
			report(Violation{Method: r.Method, Path: r.URL.Path, Request: true, Err: oneLine(err)})
			problem(w, http.StatusBadRequest, "request not allowed by the API document: "+oneLine(err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{header: http.Header{}}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: rec.status, Header: rec.header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		out.SetBodyBytes(rec.body.Bytes())
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			report(Violation{Method: r.Method, Path: r.URL.Path, Status: rec.status, Err: oneLine(err)})
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	})
}

func (s *Spec) allowed(r *http.Request) bool {
	p := strings.TrimPrefix(r.URL.Path, s.Base)
	for _, u := range s.unspecified {
		if u.Method == r.Method && u.Path.MatchString(p) {
			return true
		}
	}
	return false
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q}`, http.StatusText(status), status, detail)
}

// recorder keeps an answer for validation.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
