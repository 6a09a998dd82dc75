// Package swf reads job traces in the Standard Workload Format (SWF 2.2)
// of the Parallel Workloads Archive (Feitelson et al.): a header of ";"
// comment lines, then one job a line in 18 whitespace-separated fields.
// It reads gzip-compressed or plain traces.
package swf

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrFormat: the input is not a valid SWF trace.
var ErrFormat = errors.New("swf: malformed trace")

// Job is one job of a trace. Durations are whole seconds; an unknown
// value (-1 in the file) is -1 (counts) or a negative duration.
type Job struct {
	ID       int
	Submit   time.Duration // since the start of the trace
	Wait     time.Duration
	Run      time.Duration
	Procs    int // allocated processors
	ReqProcs int // requested processors
	ReqTime  time.Duration
	Status   int
	User     int
	Queue    int
	// Partition numbers the partition the job ran in (-1: unknown).
	Partition int
}

// Width returns the processors the job used: allocated, or requested when
// the allocation is unknown.
func (j Job) Width() int {
	if j.Procs > 0 {
		return j.Procs
	}
	return j.ReqProcs
}

// Partial reports whether the line is one partial execution of a job that
// was checkpointed or swapped out: status 2 (to be continued), 3 (the last
// one, the job completed) or 4 (the last one, the job failed). SWF gives
// such a job a summary line as well (status 0, 1 or 5, the same job
// number), which stands for the whole job: a replay that also ran its
// partial lines would run the job twice.
func (j Job) Partial() bool {
	return j.Status >= 2 && j.Status <= 4
}

// Header holds the header fields a simulation needs.
type Header struct {
	Computer       string
	MaxNodes       int
	MaxProcs       int
	UnixStartTime  int64
	TimeZoneString string
}

// Start returns the wall-clock start of the trace (UTC), zero if unknown.
func (h Header) Start() time.Time {
	if h.UnixStartTime == 0 {
		return time.Time{}
	}
	return time.Unix(h.UnixStartTime, 0).UTC()
}

// Trace is a parsed trace, its jobs in file order (by submit time).
type Trace struct {
	Header Header
	Jobs   []Job
}

// ReadFile reads the trace at path, gzip-compressed or plain.
func ReadFile(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Read reads a trace, gzip-compressed or plain.
func Read(r io.Reader) (*Trace, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, err := br.Peek(2); err == nil && bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
		defer gz.Close()
		br = bufio.NewReaderSize(gz, 1<<16)
	}
	t := &Trace{}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "":
			continue
		case strings.HasPrefix(text, ";"):
			if err := t.Header.parse(strings.TrimSpace(text[1:])); err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrFormat, line, err)
			}
			continue
		}
		j, err := parseJob(text)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrFormat, line, err)
		}
		t.Jobs = append(t.Jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return t, nil
}

// parse reads a header line (without its ";"). A number is the leading
// integer of its value: headers often go on with a remark ("MaxNodes: 1024
// (plus 4 service nodes)"), which is left aside. A value with no leading
// integer leaves the field unknown (0); one whose leading number is not
// whole ("4.5", "1,024", "1e9") or does not fit is refused rather than cut
// short.
func (h *Header) parse(s string) error {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return nil
	}
	v = strings.TrimSpace(v)
	k = strings.TrimSpace(k)
	var err error
	switch k {
	case "Computer":
		h.Computer = v
	case "MaxNodes":
		var n int64
		n, err = leadingInt(v)
		h.MaxNodes = int(n)
	case "MaxProcs":
		var n int64
		n, err = leadingInt(v)
		h.MaxProcs = int(n)
	case "UnixStartTime":
		h.UnixStartTime, err = leadingInt(v)
	case "TimeZoneString":
		h.TimeZoneString = v
	}
	if err != nil {
		return fmt.Errorf("header %s: %w", k, err)
	}
	return nil
}

// leadingInt returns the integer v starts with, 0 if it starts with none.
func leadingInt(v string) (int64, error) {
	end := 0
	if end < len(v) && (v[end] == '-' || v[end] == '+') {
		end++
	}
	digits := end
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	if end == digits {
		return 0, nil // no number: unknown
	}
	if rest := v[end:]; len(rest) > 1 && strings.ContainsRune(".,eE", rune(rest[0])) && strings.ContainsRune("0123456789+-", rune(rest[1])) {
		return 0, fmt.Errorf("%q is not a whole number", v) // a fraction, a thousands separator or an exponent
	}
	n, err := strconv.ParseInt(v[:end], 10, 64)
	if err != nil || n > maxValue || n < -maxValue {
		return 0, fmt.Errorf("%q is out of range", v)
	}
	return n, nil
}

// maxValue bounds a count (processors, memory, ids): 2^40 is more than
// any machine has. maxSeconds bounds a time (submit, wait and run times,
// requested time): 2^31 seconds is 68 years, and the simulator adds a few
// of them to one another, which stays within a time.Duration (292 years).
// Past that a duration wraps around to a wrong value, silently.
const (
	maxValue   = 1 << 40
	maxSeconds = 1 << 31
)

// timeField reports whether field i (from 0) of a job line is a time in
// seconds: submit, wait, run, average CPU time, requested time, think
// time.
func timeField(i int) bool {
	switch i {
	case 1, 2, 3, 5, 8, 17:
		return true
	}
	return false
}

func parseJob(s string) (Job, error) {
	f := strings.Fields(s)
	if len(f) != 18 {
		return Job{}, fmt.Errorf("want 18 fields, got %d", len(f))
	}
	var v [18]int64
	for i, x := range f {
		n, err := strconv.ParseFloat(x, 64) // some traces write fractions
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return Job{}, fmt.Errorf("field %d: %q is not a number", i+1, x)
		}
		if math.Abs(n) > maxValue || timeField(i) && math.Abs(n) > maxSeconds {
			return Job{}, fmt.Errorf("field %d: %q is out of range", i+1, x)
		}
		v[i] = int64(n)
	}
	sec := func(x int64) time.Duration {
		if x < 0 {
			return -1
		}
		return time.Duration(x) * time.Second
	}
	return Job{
		ID: int(v[0]), Submit: sec(v[1]), Wait: sec(v[2]), Run: sec(v[3]),
		Procs: int(v[4]), ReqProcs: int(v[7]), ReqTime: sec(v[8]), Status: int(v[10]),
		User: int(v[11]), Queue: int(v[14]), Partition: int(v[15]),
	}, nil
}
