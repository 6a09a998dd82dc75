// Package faultinject wraps an HTTP handler with the faults a real network
// and a real service show: error statuses, answers that never come,
// dropped connections, truncated bodies. Faults are armed per request
// pattern and count; each strikes before the wrapped handler runs (the
// request changes nothing) or after it (the change is made and the client
// does not learn of it: the ambiguous case).
package faultinject

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a fault.
type Kind int

// Faults.
const (
	// Status answers with Fault.Status and a problem body.
	Status Kind = iota
	// Hang answers nothing until the client gives up (or Fault.Delay).
	Hang
	// Drop closes the connection without an answer.
	Drop
	// Truncate sends the status and headers, a Content-Length of the full
	// body and half of it, then closes the connection.
	Truncate
	// Malformed sends half of the body as if it were all of it.
	Malformed
)

func (k Kind) String() string {
	return [...]string{"status", "hang", "drop", "truncate", "malformed"}[k]
}

// Fault is one armed fault.
type Fault struct {
	Kind Kind
	// Method and PathContains select the requests it strikes ("" matches
	// any).
	Method       string
	PathContains string
	// After lets the wrapped handler serve the request first.
	After bool
	// Status is the status of a Status fault (default 500).
	Status int
	// Delay bounds a Hang (default: until the client disconnects).
	Delay time.Duration
	// Times is how many matching requests it strikes (default 1).
	Times int
}

// Injector wraps handlers with armed faults. Safe for concurrent use.
type Injector struct {
	mu     sync.Mutex
	faults []*Fault
	hits   map[Kind]int
}

// Arm adds a fault.
func (in *Injector) Arm(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = append(in.faults, &f)
}

// Hits returns how often faults of each kind struck.
func (in *Injector) Hits() map[Kind]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := map[Kind]int{}
	for k, v := range in.hits {
		out[k] = v
	}
	return out
}

// Pending returns how many armed strikes are left.
func (in *Injector) Pending() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, f := range in.faults {
		n += f.Times
	}
	return n
}

func (in *Injector) take(r *http.Request) *Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.faults {
		if f.Times > 0 && (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.Path, f.PathContains) {
			f.Times--
			if in.hits == nil {
				in.hits = map[Kind]int{}
			}
			in.hits[f.Kind]++
			c := *f
			return &c
		}
	}
	return nil
}

// Wrap returns next with the armed faults in front of it.
func (in *Injector) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := in.take(r)
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		status, header, body := f.Status, http.Header{"Content-Type": {"application/problem+json"}}, []byte(fmt.Sprintf(`{"type":"about:blank","title":%q,"status":%d,"detail":"injected fault"}`, http.StatusText(f.Status), f.Status))
		if f.After {
			rec := &recorder{header: http.Header{}}
			next.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			if f.Kind != Status {
				status, header, body = rec.status, rec.header, rec.body.Bytes()
			}
		}
		switch f.Kind {
		case Status:
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = w.Write(body)
		case Hang:
			if f.Delay > 0 {
				select {
				case <-r.Context().Done():
				case <-time.After(f.Delay):
				}
			} else {
				<-r.Context().Done()
			}
		case Drop:
			hijackClose(w)
		case Truncate:
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
			header.Set("Content-Length", strconv.Itoa(len(body)))
			_ = header.Write(buf)
			_, _ = buf.WriteString("\r\n")
			_, _ = buf.Write(body[:len(body)/2])
			_ = buf.Flush()
			_ = conn.Close()
		case Malformed:
			half := body[:len(body)/2]
			for k, v := range header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(half)))
			w.WriteHeader(status)
			_, _ = w.Write(half)
		}
	})
}

func hijackClose(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		_ = conn.Close()
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
