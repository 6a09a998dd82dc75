package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus"
)

// originalFields are the only fields of the original create request
// (Session in the CRUS document, additionalProperties: false).
var originalFields = []string{
	"failed_label", "starting_label", "upgrade_step_size",
	"upgrade_template_id", "upgrading_label", "workload_manager_type",
}

// specFields maps the JSON name of every field of crus.Spec (its embedded
// Rollout's included) to the field's index path.
var specFields = func() map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(slices.Clone(prefix), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			out[name] = idx
		}
	}
	walk(reflect.TypeFor[crus.Spec](), nil)
	return out
}()

// readBody reads a JSON request body of at most limit bytes, within
// timeout.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, *Problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if mt = strings.TrimSpace(strings.ToLower(mt)); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return nil, problemf(http.StatusUnsupportedMediaType, "the body must be application/json, not %s", mt)
		}
	}
	// The deadline is the connection's: it is lifted once the body is
	// in, or the server's watch of the connection would end the
	// request's context, and Create with it, when it passed.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, problemf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return nil, problemf(http.StatusRequestTimeout, "the body did not arrive within %v", timeout)
		}
		return nil, problemf(http.StatusBadRequest, "reading the body: %v", err)
	}
	return body, nil
}

// decodeSpec reads a session spec from a JSON object, accepting only the
// fields in allowed (nil: every field of crus.Spec). It returns every
// problem it finds at once: unknown fields, values of the wrong type, and
// whatever crus.Spec.Validate finds in the rest.
func decodeSpec(body []byte, allowed []string) (crus.Spec, *Problem) {
	var spec crus.Spec
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		detail := "the body must be a JSON object"
		if err != nil {
			detail += ": " + err.Error()
		}
		return spec, problemf(http.StatusBadRequest, "%s", detail)
	}
	if _, err := dec.Token(); err != io.EOF {
		return spec, problemf(http.StatusBadRequest, "the body must hold one JSON object and nothing after it")
	}
	var problems []*crus.FieldError
	bad := map[string]bool{}
	// A key given twice is refused: the decoder keeps the last value,
	// while a proxy, a log or a reviewer may read the first (a
	// starting_label of "test" and then "compute" upgraded the
	// second group).
	twice, inside := duplicateKeys(body)
	for _, k := range twice {
		problems = append(problems, &crus.FieldError{Field: k, Problem: "is given more than once"})
		bad[k] = true
	}
	for _, k := range inside {
		if !bad[k] {
			problems = append(problems, &crus.FieldError{Field: k, Problem: "holds an object with a key given more than once"})
			bad[k] = true
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	v := reflect.ValueOf(&spec).Elem()
	for _, k := range keys {
		if bad[k] {
			continue
		}
		idx, known := specFields[k]
		if !known || (allowed != nil && !slices.Contains(allowed, k)) {
			problem := "is not a field of this request"
			if known {
				// A crus rollout option sent to the original API's create.
				problem += " (the original API's POST /session takes only its six fields; crus's options are fields of POST /sessions)"
			}
			problems = append(problems, &crus.FieldError{Field: k, Problem: problem})
			bad[k] = true
			continue
		}
		f := v.FieldByIndex(idx)
		p := reflect.New(f.Type())
		d := json.NewDecoder(bytes.NewReader(raw[k]))
		d.DisallowUnknownFields()
		if err := d.Decode(p.Interface()); err != nil {
			problems = append(problems, &crus.FieldError{Field: k, Value: json.RawMessage(raw[k]), Problem: typeProblem(f.Type(), err)})
			bad[k] = true
			continue
		}
		f.Set(p.Elem())
	}
	for _, fe := range fieldErrors(spec.Validate()) {
		if !bad[fe.Field] {
			problems = append(problems, fe)
		}
	}
	if len(problems) > 0 {
		return spec, invalid(problems)
	}
	return spec, nil
}

func typeProblem(t reflect.Type, err error) string {
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		if t == reflect.TypeFor[crus.Duration]() {
			want = `a duration such as "30m"`
		} else {
			want = "an integer"
		}
	case reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "a list"
	default:
		want = "a " + t.Name()
	}
	return fmt.Sprintf("must be %s (%v)", want, err)
}

// duplicateKeys returns the keys given more than once in the object of
// body (twice), and the keys whose value holds an object with a key
// given more than once (inside), each once, in the body's order. body is
// one valid JSON object.
func duplicateKeys(body []byte) (twice, inside []string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// value reads one value and reports whether an object in it has a
	// key twice.
	var value func() bool
	value = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		dup := false
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return dup
				}
				key, _ := k.(string)
				if seen[key] {
					dup = true
				}
				seen[key] = true
				if value() {
					dup = true
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if value() {
					dup = true
				}
			}
			_, _ = dec.Token()
		}
		return dup
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := k.(string)
		if seen[key] && !slices.Contains(twice, key) {
			twice = append(twice, key)
		}
		seen[key] = true
		if value() && !slices.Contains(inside, key) {
			inside = append(inside, key)
		}
	}
	return twice, inside
}
