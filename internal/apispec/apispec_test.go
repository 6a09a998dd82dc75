package apispec

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// serve runs one request through a validated handler and returns the
// violations reported and the answer's status.
func serve(t *testing.T, spec *Spec, h http.HandlerFunc, method, path, body string) ([]Violation, int) {
	t.Helper()
	var got []Violation
	v := spec.Validate(h, func(v Violation) { got = append(got, v) })
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	v.ServeHTTP(rec, req)
	return got, rec.Code
}

func answer(status int, ct, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func must(t *testing.T, load func() (*Spec, error)) *Spec {
	t.Helper()
	s, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateAcceptsWhatTheDocumentAllows(t *testing.T) {
	hsm, bos := must(t, HSM), must(t, BOS)
	for _, tc := range []struct {
		name             string
		spec             *Spec
		method, path, in string
		status           int
		ct, out          string
	}{
		{"hsm members", hsm, "GET", "/apis/smd/hsm/v2/groups/crus-upgrading/members", "", 200, "application/json", `{"ids":["x1000c0s0b0n0"]}`},
		{"hsm problem", hsm, "GET", "/apis/smd/hsm/v2/groups/nope/members", "", 404, "application/problem+json", `{"type":"about:blank","title":"Not Found","detail":"No such group: nope","status":404}`},
		// Allowed mismatch: a label the document's hex-like pattern refuses.
		{"hsm label in body", hsm, "POST", "/apis/smd/hsm/v2/groups", `{"label":"crus-upgrading"}`, 201, "application/json", `[{"URI":"/hsm/v2/groups/crus-upgrading"}]`},
		// Allowed: the bulk PUT probe on HPE Cray's HSM.
		{"hsm put probe", hsm, "PUT", "/apis/smd/hsm/v2/groups/blue/members", `{"group":"blue","ids":[]}`, 404, "text/plain", "404 page not found\n"},
		{"bos session", bos, "POST", "/apis/bos/v2/sessions", `{"name":"s1","operation":"reboot","template_name":"t1","limit":"x1000c0s0b0n0"}`, 201, "application/json",
			`{"name":"s1","operation":"reboot","template_name":"t1","limit":"x1000c0s0b0n0","stage":false,"components":"","status":{"status":"pending","start_time":"2026-01-05T08:00:00"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, status := serve(t, tc.spec, answer(tc.status, tc.ct, tc.out), tc.method, tc.path, tc.in)
			if len(got) != 0 || status != tc.status {
				t.Errorf("violations %v, status %d; want none and %d", got, status, tc.status)
			}
		})
	}
}

func TestValidateReportsWhatTheDocumentRefuses(t *testing.T) {
	hsm, openchami, bos := must(t, HSM), must(t, OpenCHAMI), must(t, BOS)
	ok := answer(200, "application/json", `{"ids":[]}`)
	for _, tc := range []struct {
		name             string
		spec             *Spec
		h                http.HandlerFunc
		method, path, in string
		request          bool
		want             string
	}{
		{"unknown path", hsm, ok, "GET", "/apis/smd/hsm/v2/no/such/thing", "", true, "no matching operation"},
		{"unknown method", hsm, ok, "PATCH", "/apis/smd/hsm/v2/groups/blue/members", "", true, "method not allowed"},
		{"bulk PUT body on OpenCHAMI", openchami, ok, "PUT", "/apis/smd/hsm/v2/groups/blue/members", `{"group":"blue","ids":"x1"}`, true, "ids"},
		{"query body", hsm, ok, "POST", "/apis/smd/hsm/v2/State/Components/Query", `{"ComponentIDs":"x1000c0s0b0n0"}`, true, "ComponentIDs"},
		{"bos operation", bos, ok, "POST", "/apis/bos/v2/sessions", `{"operation":"explode","template_name":"t1"}`, true, "operation"},
		{"bos unknown field", bos, ok, "POST", "/apis/bos/v2/sessions", `{"operation":"reboot","template_name":"t1","templateName":"t1"}`, true, "templateName"},
		{"bos ids too long", bos, answer(200, "application/json", `[]`), "GET", "/apis/bos/v2/components?ids=" + strings.Repeat("x1000c0s0b0n0,", 10), "", true, "ids"},
		{"answer shape", hsm, answer(200, "application/json", `{"ids":"x1"}`), "GET", "/apis/smd/hsm/v2/groups/blue/members", "", false, "ids"},
		{"answer status", bos, answer(500, "application/problem+json", `{"title":"boom"}`), "GET", "/apis/bos/v2/sessions/s1", "", false, "500"},
		{"answer content type", bos, answer(404, "application/json", `"gone"`), "GET", "/apis/bos/v2/sessions/s1", "", false, "Content-Type"},
		{"resource URI key", hsm, answer(201, "application/json", `[{"ResourceURI":"/hsm/v2/groups/blue"}]`), "POST", "/apis/smd/hsm/v2/groups", `{"label":"blue"}`, false, "URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, status := serve(t, tc.spec, tc.h, tc.method, tc.path, tc.in)
			if len(got) == 0 {
				t.Fatalf("no violation reported (status %d)", status)
			}
			t.Log(got[0])
			if got[0].Request != tc.request || !strings.Contains(got[0].String(), tc.want) {
				t.Errorf("violation %q (request %v); want one about %q (request %v)", got[0], got[0].Request, tc.want, tc.request)
			}
			if tc.request && status < 400 {
				t.Errorf("a refused request was answered %d", status)
			}
		})
	}
}

// BOS v1's GET /v1/session/{id} of a session that has started, as BOS v1
// answers it: real metadata, a relative status_link. The document as
// published refuses it (its oneOf matches twice); the allowances of
// mismatches.go take it and still refuse a record with neither template
// key.
func TestBOSv1StartedSessionDetails(t *testing.T) {
	v1 := must(t, BOSv1)
	started := `{"operation":"reboot","templateName":"cos","job":"boa-6f1c","status_link":"/v1/session/6f1c/status",` +
		`"start_time":"2026-01-05T08:00:00","stop_time":null,"complete":false,"in_progress":true,"error_count":0}`
	got, status := serve(t, v1, answer(200, "application/json", started), "GET", "/apis/bos/v1/session/6f1c", "")
	if len(got) != 0 || status != 200 {
		t.Errorf("started session: violations %v, status %d; want none", got, status)
	}
	neither := `{"operation":"reboot","job":"boa-6f1c","complete":false,"in_progress":true,"error_count":0}`
	if got, _ := serve(t, v1, answer(200, "application/json", neither), "GET", "/apis/bos/v1/session/6f1c", ""); len(got) == 0 {
		t.Error("a session record with neither templateName nor templateUuid: no violation")
	}
}

// status_link is a relative reference, which format "uri" (absolute)
// refuses: checked with validators of both formats, which kin-openapi
// does not apply by default.
func TestBOSv1StatusLinkFormat(t *testing.T) {
	v1 := must(t, BOSv1)
	absolute := openapi3.NewCallbackValidator(func(s string) error {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			return fmt.Errorf("%q is not an absolute URI", s)
		}
		return nil
	})
	reference := openapi3.NewCallbackValidator(func(s string) error { _, err := url.Parse(s); return err })
	schema := v1.Doc.Components.Schemas["V1SessionStatusUri"].Value
	err := schema.VisitJSON("/v1/session/6f1c/status", openapi3.EnableFormatValidation(),
		openapi3.WithStringFormatValidator("uri", absolute), openapi3.WithStringFormatValidator("uri-reference", reference))
	if err != nil {
		t.Errorf("the status_link BOS v1 sends: %v", err)
	}
}
