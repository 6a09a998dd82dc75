package slurm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// The JSON documents of slurmrestd, `sinfo --json` and `squeue --json`
// come in two shapes, both read by the types below:
//
//   - v0.0.36–v0.0.38 (Slurm 21.08–22.05, and the --json output of their
//     commands): "state" is one lower-case base state with the flags in
//     "state_flags"; times are Unix seconds, 0 when unknown.
//   - v0.0.39 and later (Slurm 23.02+): "state" is a list of upper-case
//     words, base and flags together; times are objects
//     {"set":bool,"infinite":bool,"number":seconds}.

// stateWords is a "state" field: one word or a list of them, at most
// maxStateWords (Slurm has about twenty state flags), so that a list of
// millions of empty strings cannot make decoding allocate without bound.
type stateWords []string

const maxStateWords = 64

func (s *stateWords) UnmarshalJSON(b []byte) error {
	// The decoder has checked that b is one JSON value; read it without
	// a decoder of its own, which would cost more than the words.
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		w, _, err := jsonString(b)
		if err != nil {
			return err
		}
		*s = stateWords{w}
		return nil
	case len(b) == 0 || b[0] != '[':
		return fmt.Errorf("state: want a string or a list of strings, got %q", text.Cap(string(b), 40))
	}
	var words stateWords
	rest := bytes.TrimLeft(b[1:], " \t\r\n")
	for len(rest) > 0 && rest[0] != ']' {
		if len(words) == maxStateWords {
			return fmt.Errorf("state: more than %d words", maxStateWords)
		}
		if rest[0] != '"' {
			return fmt.Errorf("state: want a list of strings, got %q", text.Cap(string(b), 40))
		}
		w, n, err := jsonString(rest)
		if err != nil {
			return err
		}
		words = append(words, w)
		rest = bytes.TrimLeft(rest[n:], " \t\r\n")
		if len(rest) > 0 && rest[0] == ',' {
			rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		}
	}
	*s = words
	return nil
}

// jsonString reads the JSON string at the start of b (valid JSON): its
// value and its length in b.
func jsonString(b []byte) (string, int, error) {
	escaped := false
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return string(b[1:i]), i + 1, nil
			}
			var w string
			if err := json.Unmarshal(b[:i+1], &w); err != nil {
				return "", 0, err
			}
			return w, i + 1, nil
		}
	}
	return "", 0, fmt.Errorf("state: unterminated string")
}

// unixTime is a time field: Unix seconds, or a no_val object. Zero,
// unset and infinite values are the zero time (unknown).
type unixTime time.Time

func (t *unixTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*t = unixTime{}
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	var v int64
	if b[0] == '{' {
		var nv struct {
			Set      bool  `json:"set"`
			Infinite bool  `json:"infinite"`
			Number   int64 `json:"number"`
		}
		if err := json.Unmarshal(b, &nv); err != nil {
			return err
		}
		if !nv.Set || nv.Infinite {
			return nil
		}
		v = nv.Number
	} else if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("time: want seconds or a {set,number} object, got %.40s", b)
	}
	if v > 0 && v <= maxUnix {
		*t = unixTime(time.Unix(v, 0))
	}
	return nil
}

// apiError is one entry of a response's "errors" (or "warnings") list;
// v0.0.38 says "error" and "errno", v0.0.39+ also "description",
// "error_number" and "source".
type apiError struct {
	Error       string `json:"error"`
	Errno       int    `json:"errno"`
	ErrorNumber int    `json:"error_number"`
	Description string `json:"description"`
	Source      string `json:"source"`
}

func (e apiError) number() int {
	if e.ErrorNumber != 0 {
		return e.ErrorNumber
	}
	return e.Errno
}

func (e apiError) String() string {
	parts := make([]string, 0, 3)
	for _, p := range []string{e.Error, e.Description, e.Source} {
		if p != "" && !containsString(parts, p) {
			parts = append(parts, p)
		}
	}
	s := strings.Join(parts, ": ")
	if s == "" {
		s = "no message"
	}
	if n := e.number(); n != 0 {
		s += fmt.Sprintf(" (errno %d)", n)
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonNode holds the fields of a node that crus reads.
type jsonNode struct {
	Name            string     `json:"name"`
	State           stateWords `json:"state"`
	StateFlags      stateWords `json:"state_flags"`
	Reason          string     `json:"reason"`
	ReasonChangedAt unixTime   `json:"reason_changed_at"`
	ReasonSetBy     string     `json:"reason_set_by_user"`
	BootTime        unixTime   `json:"boot_time"`
	SlurmdStartTime unixTime   `json:"slurmd_start_time"`
	Weight          jsonWeight `json:"weight"`
}

// jsonWeight is a node's weight as slurmrestd gives it: a number, or
// (in the newer API versions' style) an object with "set" and "number";
// -1 for anything else, or none. A weight slurmrestd spells otherwise
// leaves the node's steering unknown rather than the node unread.
type jsonWeight int64

func (w *jsonWeight) UnmarshalJSON(b []byte) error {
	*w = -1
	var n uint32
	if string(b) == "null" {
		return nil
	}
	if json.Unmarshal(b, &n) == nil {
		*w = jsonWeight(n)
		return nil
	}
	var o struct {
		Set    bool    `json:"set"`
		Number *uint32 `json:"number"`
	}
	if json.Unmarshal(b, &o) == nil && o.Set && o.Number != nil {
		*w = jsonWeight(*o.Number)
	}
	return nil
}

func (j jsonNode) node() wlm.Node {
	n := wlm.Node{
		Name:           j.Name,
		Reason:         j.Reason,
		ReasonUser:     j.ReasonSetBy,
		ReasonTime:     time.Time(j.ReasonChangedAt),
		BootTime:       time.Time(j.BootTime),
		AgentStartTime: time.Time(j.SlurmdStartTime),
		Steering:       steeringOf(int64(j.Weight)),
	}
	words := make([]string, 0, len(j.State)+len(j.StateFlags))
	words = append(words, j.State...)
	words = append(words, j.StateFlags...)
	setState(&n, words)
	if n.Reason == "" {
		n.ReasonUser, n.ReasonTime = "", time.Time{}
	}
	return n
}

// The decoders below read a document one element at a time from a
// stream: what they allocate is bounded by the largest single node or job
// record and by what they keep (the nodes asked about), not by the size of
// the answer. A document of a hundred thousand nodes is over 120 MB (see
// maxBody); decoding it whole used to allocate many times that.

// maxDocErrors bounds the entries of an "errors" list that are kept.
const maxDocErrors = 8

// decodeNodes reads a nodes document (GET /slurm/vX/nodes, or `sinfo
// --json`) and returns the named nodes keep accepts (nil: all), and the
// errors the document reports (at most maxDocErrors; the rest are counted
// in a last entry). A document with no list of nodes is an error
// (errNoList): read as an empty list, it would make every node asked about
// read as gone.
func decodeNodes(rd io.Reader, keep func(name string) bool) ([]wlm.Node, []apiError, error) {
	dec := json.NewDecoder(rd)
	var nodes []wlm.Node
	var errs docErrors
	listed := false
	err := walkObject(dec, func(key string) error {
		switch key {
		case "nodes":
			var j jsonNode
			listed = true
			return eachElement(dec, false, func() error {
				j = jsonNode{Weight: -1} // no weight: steering unknown
				if err := dec.Decode(&j); err != nil {
					return err
				}
				if j.Name != "" && (keep == nil || keep(j.Name)) {
					nodes = append(nodes, j.node())
				}
				return nil
			})
		case "errors":
			return errs.decode(dec)
		}
		return dec.Decode(&skipValue{})
	})
	if err == nil && !listed {
		err = fmt.Errorf("%w \"nodes\"", errNoList)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("slurm: reading nodes JSON: %w", err)
	}
	return nodes, errs.list(), nil
}

// parseNodesJSON reads a whole nodes document held in memory.
func parseNodesJSON(b []byte) ([]wlm.Node, []apiError, error) {
	return decodeNodes(bytes.NewReader(b), nil)
}

// jsonJob holds the fields of a job that crus reads.
type jsonJob struct {
	JobID    json.Number `json:"job_id"`
	JobState stateWords  `json:"job_state"`
	EndTime  unixTime    `json:"end_time"`
	Nodes    string      `json:"nodes"`
}

// activeJobStates are the job states in which a job holds its nodes.
var activeJobStates = map[string]bool{"RUNNING": true, "COMPLETING": true, "SUSPENDED": true}

// decodeJobs reads a jobs document (GET /slurm/vX/jobs, or `squeue
// --json`) and returns the jobs that hold nodes (running, completing or
// suspended), with the nodes keep accepts (nil: all; jobs left with none
// are dropped when keep is set). The node lists of all jobs share one
// expansion budget (see MaxHostlistExpansion). A document with no "jobs"
// member is an error (errNoList), as it would read as every node free; a
// null list is no jobs.
func decodeJobs(rd io.Reader, keep func(name []byte) bool) ([]queuedJob, []apiError, error) {
	dec := json.NewDecoder(rd)
	var jobs []queuedJob
	var errs docErrors
	e := newExpander()
	listed := false
	err := walkObject(dec, func(key string) error {
		switch key {
		case "jobs":
			var j jsonJob
			listed = true
			return eachElement(dec, true, func() error {
				j = jsonJob{}
				if err := dec.Decode(&j); err != nil {
					return err
				}
				state := ""
				for _, w := range j.JobState {
					if w = strings.ToUpper(w); activeJobStates[w] {
						state = w
					}
				}
				if state == "" {
					return nil
				}
				nodes, err := e.keep(j.Nodes, keep)
				if err != nil {
					return fmt.Errorf("job %s: %w", text.Cap(j.JobID.String(), 40), err)
				}
				if keep == nil || len(nodes) > 0 {
					jobs = append(jobs, queuedJob{ID: j.JobID.String(), State: state, End: time.Time(j.EndTime), Nodes: nodes})
				}
				return nil
			})
		case "errors":
			return errs.decode(dec)
		}
		return dec.Decode(&skipValue{})
	})
	if err == nil && !listed {
		err = fmt.Errorf("%w \"jobs\"", errNoList)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("slurm: reading jobs JSON: %w", err)
	}
	return jobs, errs.list(), nil
}

// parseJobsJSON reads a whole jobs document held in memory.
func parseJobsJSON(b []byte) ([]queuedJob, []apiError, error) {
	return decodeJobs(bytes.NewReader(b), nil)
}

// docErrors collects a document's "errors" list: the first maxDocErrors
// entries, cleaned and capped, and the number of the others.
type docErrors struct {
	kept  []apiError
	extra int
}

func (d *docErrors) decode(dec *json.Decoder) error {
	return eachElement(dec, true, func() error {
		if len(d.kept) == maxDocErrors {
			d.extra++
			return dec.Decode(&skipValue{})
		}
		var e apiError
		if err := dec.Decode(&e); err != nil {
			return err
		}
		d.kept = append(d.kept, e)
		return nil
	})
}

func (d *docErrors) list() []apiError {
	out := scrubErrors(d.kept, "")
	if d.extra > 0 {
		out = append(out, apiError{Error: fmt.Sprintf("and %d more errors", d.extra)})
	}
	return out
}

// walkObject reads a JSON object from dec and calls field with each key;
// field must read the key's value. A null document is an empty object.
func walkObject(dec *json.Decoder, field func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want an object, got %s", kindOf(t))
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if err := field(key); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// errNoList is a document without the list it is read for: a proxy's or
// another service's answer, or a version of slurmrestd that names it
// otherwise. Read as an empty list, it would say that every node asked
// about is gone, or free.
var errNoList = errors.New("the answer has no list of")

// eachElement reads a JSON list from dec and calls elem for each element;
// elem must read it. A null is an empty list if nullOK, else an error.
func eachElement(dec *json.Decoder, nullOK bool, elem func() error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		if nullOK {
			return nil
		}
		return fmt.Errorf("want a list, got null")
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("want a list, got %s", kindOf(t))
	}
	for dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// kindOf names the kind of a JSON token, for errors (never its text,
// which may be anything of any size).
func kindOf(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		return string(t)
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "a number"
}

// skipValue reads a JSON value and keeps nothing of it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }
