package slurm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

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

// stateWords is a "state" field: one word or a list of them.
type stateWords []string

func (s *stateWords) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stateWords{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("state: want a string or a list of strings, got %.40s", b)
	}
	*s = many
	return nil
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
	StateFlags      []string   `json:"state_flags"`
	Reason          string     `json:"reason"`
	ReasonChangedAt unixTime   `json:"reason_changed_at"`
	ReasonSetBy     string     `json:"reason_set_by_user"`
	BootTime        unixTime   `json:"boot_time"`
	SlurmdStartTime unixTime   `json:"slurmd_start_time"`
}

func (j jsonNode) node() wlm.Node {
	n := wlm.Node{
		Name:           j.Name,
		Reason:         j.Reason,
		ReasonUser:     j.ReasonSetBy,
		ReasonTime:     time.Time(j.ReasonChangedAt),
		BootTime:       time.Time(j.BootTime),
		AgentStartTime: time.Time(j.SlurmdStartTime),
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

// nodesResponse is GET /slurm/vX/nodes (and /node/{name}) or `sinfo --json`.
type nodesResponse struct {
	Errors []apiError `json:"errors"`
	Nodes  []jsonNode `json:"nodes"`
}

// parseNodesJSON reads a nodes document. It returns the nodes and the
// errors the document reports.
func parseNodesJSON(b []byte) ([]wlm.Node, []apiError, error) {
	var r nodesResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, fmt.Errorf("slurm: reading nodes JSON: %w", err)
	}
	nodes := make([]wlm.Node, 0, len(r.Nodes))
	for _, j := range r.Nodes {
		if j.Name == "" {
			continue
		}
		nodes = append(nodes, j.node())
	}
	return nodes, r.Errors, nil
}

// jsonJob holds the fields of a job that crus reads.
type jsonJob struct {
	JobID    json.Number `json:"job_id"`
	JobState stateWords  `json:"job_state"`
	EndTime  unixTime    `json:"end_time"`
	Nodes    string      `json:"nodes"`
}

// jobsResponse is GET /slurm/vX/jobs or `squeue --json`.
type jobsResponse struct {
	Errors []apiError `json:"errors"`
	Jobs   []jsonJob  `json:"jobs"`
}

// activeJobStates are the job states in which a job holds its nodes.
var activeJobStates = map[string]bool{"RUNNING": true, "COMPLETING": true, "SUSPENDED": true}

// parseJobsJSON reads a jobs document and returns the jobs that hold
// nodes (running, completing or suspended), with their nodes expanded.
func parseJobsJSON(b []byte) ([]queuedJob, []apiError, error) {
	var r jobsResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil, fmt.Errorf("slurm: reading jobs JSON: %w", err)
	}
	var jobs []queuedJob
	for _, j := range r.Jobs {
		state := ""
		active := false
		for _, w := range j.JobState {
			w = strings.ToUpper(w)
			if activeJobStates[w] {
				active, state = true, w
			}
		}
		if !active {
			continue
		}
		nodes, err := ExpandHostlist(j.Nodes)
		if err != nil {
			return nil, r.Errors, fmt.Errorf("slurm: job %s: %w", j.JobID, err)
		}
		jobs = append(jobs, queuedJob{ID: j.JobID.String(), State: state, End: time.Time(j.EndTime), Nodes: nodes})
	}
	return jobs, r.Errors, nil
}
