package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/crus-go/crus/api"
)

// document is an OpenAPI document ready to check traffic.
type document struct {
	name   string
	doc    *openapi3.T
	router routers.Router
}

func loadDocument(t testing.TB, name string, data []byte) *document {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("%s is not a valid document: %v", name, err)
	}
	doc.Servers = openapi3.Servers{{URL: "/apis/crus"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &document{name: name, doc: doc, router: router}
}

// crusDocument is the original CRUS API document (a verbatim copy of
// shared/specs/crus-openapi.yaml).
func crusDocument(t testing.TB) *document {
	data, err := os.ReadFile("testdata/crus-openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return loadDocument(t, "crus-openapi.yaml", data)
}

func extDocument(t testing.TB) *document { return loadDocument(t, "api/openapi.yaml", api.OpenAPI) }

// addedToOriginal are the answers crus adds to the original paths, as its
// own document says; the original document does not list them.
var addedToOriginal = []int{401, 403, 405, 408, 409, 413, 415, 503}

// exchange is one request and its answer, as the client saw them.
type exchange struct {
	method, path string
	reqBody      []byte
	reqHeader    http.Header
	status       int
	header       http.Header
	body         []byte
}

// checker is an http.RoundTripper that keeps every exchange and checks
// it against the documents: the original paths against the CRUS document,
// every path against crus's own.
type checker struct {
	t      testing.TB
	next   http.RoundTripper
	crus   *document
	ext    *document
	mu     sync.Mutex
	seen   map[string]bool // "METHOD path-template status"
	strict bool            // the requests are expected to be valid too
}

func newChecker(t testing.TB) *checker {
	return &checker{t: t, next: http.DefaultTransport, crus: crusDocument(t), ext: extDocument(t), seen: map[string]bool{}}
}

func (c *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp, nil // a stream: checked event by event by its test
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	c.check(exchange{req.Method, req.URL.Path, body, req.Header, resp.StatusCode, resp.Header, out}, req)
	return resp, nil
}

func (c *checker) check(x exchange, orig *http.Request) {
	c.t.Helper()
	original := x.path == "/apis/crus/session" || strings.HasPrefix(x.path, "/apis/crus/session/")
	docs := []*document{c.ext}
	if original {
		docs = append(docs, c.crus)
	}
	for _, d := range docs {
		req := orig.Clone(context.Background())
		req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
		route, params, err := d.router.FindRoute(req)
		if err != nil {
			if x.status == http.StatusNotFound || x.status == http.StatusMethodNotAllowed {
				continue // a request outside the document, refused as it should be
			}
			c.t.Errorf("%s: %s %s answered %d is not in the document: %v", d.name, x.method, x.path, x.status, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)
		if reqErr != nil && x.status < 400 {
			c.t.Errorf("%s: %s %s: a request the document refuses was answered %d: %v", d.name, x.method, x.path, x.status, reqErr)
		}
		if reqErr != nil && c.strict {
			c.t.Errorf("%s: %s %s: request not valid: %v", d.name, x.method, x.path, reqErr)
		}
		// The original document does not list the answers crus adds;
		// its own document does (and is checked with IncludeResponseStatus).
		includeStatus := d == c.ext || !slices.Contains(addedToOriginal, x.status)
		// In the original document, error answers have no content; a
		// problem body is then not checked against it, only against
		// crus's own document.
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: x.status, Header: x.header,
			Options: &openapi3filter.Options{IncludeResponseStatus: includeStatus, MultiError: true},
		}
		out.SetBodyBytes(x.body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			c.t.Errorf("%s: %s %s: answer %d not allowed: %v\nbody: %s", d.name, x.method, x.path, x.status, err, x.body)
		}
		c.mu.Lock()
		c.seen[d.name+" "+x.method+" "+route.Path+" "+strconv.Itoa(x.status)] = true
		c.mu.Unlock()
	}
}

// covered returns the "document METHOD path status" seen so far.
func (c *checker) covered() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for k := range c.seen {
		out[k] = true
	}
	return out
}
