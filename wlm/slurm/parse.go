package slurm

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// The adapters run scontrol and squeue with SLURM_TIME_FORMAT=%s and TZ=UTC,
// so times come as Unix seconds; the standard ISO form is read as UTC in
// case a site's wrapper ignores SLURM_TIME_FORMAT.
const isoLayout = "2006-01-02T15:04:05"

// parseTime reads a time as Slurm prints it. "None", "Unknown", "N/A", "0"
// and the empty string mean unknown and give the zero time (Slurm shows
// BootTime=None for a moment after a node registers: unknown, not old).
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "0", "None", "NONE", "Unknown", "UNKNOWN", "N/A", "n/a", "INVALID":
		return time.Time{}, true
	}
	if isDigits(s) {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v > maxUnix {
			return time.Time{}, false
		}
		return time.Unix(v, 0), true
	}
	t, err := time.ParseInLocation(isoLayout, s, time.UTC)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// maxUnix bounds the Unix times taken as real (year 9999); larger values
// are Slurm's "infinite" markers or garbage.
const maxUnix = 253402300799

// freeTextKeys are the fields of `scontrol show node` whose values may
// hold spaces and anything else: scontrol puts each on a line of its own
// and the value runs to the end of the line.
var freeTextKeys = [][]byte{[]byte("OS="), []byte("Reason="), []byte("Comment="), []byte("Extra="), []byte("InstanceId="), []byte("InstanceType=")}

// reasonRE splits a Reason value into the text and the "[user@time]"
// scontrol appends.
var reasonRE = regexp.MustCompile(`^(.*?) ?\[([^\[\]@]*)@([^\[\]]*)\]$`)

// notFoundRE matches scontrol's line for a name it does not know.
var notFoundRE = regexp.MustCompile(`^Node (\S+) not found$`)

// showNodeOutput is what `scontrol show node <hostlist>` said.
type showNodeOutput struct {
	nodes []wlm.Node
	// weights[i] is the Weight of nodes[i], which wlm.Node holds only
	// as its Steering (Steer reads the number); -1 if scontrol showed
	// none or not a number.
	weights  []int64
	notFound []string
	// unexpected holds lines that fit nowhere (for error messages).
	unexpected []string
}

// showRecord holds the fields of one node that crus reads.
type showRecord struct {
	name, state, boot, slurmdStart, weight string
	reason                                 *string
}

// parseShowNode parses the multi-line output of `scontrol show node`
// (without -o). Records start with a "NodeName=" line; their other lines are
// indented. The free-text fields (OS, Reason, Comment, Extra) are alone on
// their lines, so their values are taken whole; on other lines, a value
// runs to the next " Key=". Unknown names show as "Node X not found".
//
// It reads a 10,000-node answer in about a tenth of a second (see
// BenchmarkParseShowNode10k): only the fields crus needs become strings.
func parseShowNode(out []byte) showNodeOutput {
	var res showNodeOutput
	var cur *showRecord
	var lastFree *string // the last free-text value of cur, for continuations
	var scratch string   // where ignored free-text values go
	flush := func() {
		if cur != nil {
			n, w := cur.node(), parseWeight(cur.weight)
			n.Steering = steeringOf(w)
			res.nodes = append(res.nodes, n)
			res.weights = append(res.weights, w)
			cur = nil
		}
		lastFree = nil
	}
	for len(out) > 0 {
		var line []byte
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			line, out = out[:i], out[i+1:]
		} else {
			line, out = out, nil
		}
		line = bytes.TrimRight(line, " \t\r")
		switch {
		case bytes.HasPrefix(line, []byte("NodeName=")):
			flush()
			cur = &showRecord{}
			cur.fields(line)
		case len(line) == 0:
			flush()
		case cur != nil && (line[0] == ' ' || line[0] == '\t'):
			body := bytes.TrimLeft(line, " \t")
			lastFree = nil
			for _, k := range freeTextKeys {
				if bytes.HasPrefix(body, k) {
					v := string(body[len(k):])
					if k[0] == 'R' {
						cur.reason = &v
						lastFree = cur.reason
					} else {
						scratch = v
						lastFree = &scratch
					}
					break
				}
			}
			if lastFree == nil {
				cur.fields(body)
			}
		case cur != nil && lastFree != nil:
			// A free-text value holding a newline (set by someone
			// else; crus refuses such reasons) goes on here.
			*lastFree += "\n" + string(line)
		default:
			if m := notFoundRE.FindSubmatch(line); m != nil {
				flush()
				res.notFound = append(res.notFound, string(m[1]))
				continue
			}
			res.unexpected = append(res.unexpected, string(line))
		}
	}
	flush()
	return res
}

// fields reads the Key=Value pairs of one line into r: a key is a word at
// the start of the line or after a blank, followed by '='; its value runs
// to the next key. Only the first value of a key counts.
func (r *showRecord) fields(line []byte) {
	var keysBuf, eqsBuf [16]int
	keys, eqs := keysBuf[:0], eqsBuf[:0]
	keyStart := -1
	for i := 0; i < len(line); i++ {
		c := line[i]
		if keyStart < 0 {
			if isLetter(c) && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
				keyStart = i
			}
			continue
		}
		switch {
		case c == '=':
			keys, eqs = append(keys, keyStart), append(eqs, i)
			keyStart = -1
		case !isLetter(c) && (c < '0' || c > '9') && c != '_':
			keyStart = -1
		}
	}
	for k := range keys {
		end := len(line)
		if k+1 < len(keys) {
			end = keys[k+1]
		}
		r.set(line[keys[k]:eqs[k]], bytes.TrimSpace(line[eqs[k]+1:end]))
	}
}

func (r *showRecord) set(key, val []byte) {
	var f *string
	switch string(key) {
	case "NodeName":
		f = &r.name
	case "State":
		f = &r.state
	case "BootTime":
		f = &r.boot
	case "SlurmdStartTime":
		f = &r.slurmdStart
	case "Weight":
		f = &r.weight
	default:
		return
	}
	if *f == "" {
		*f = string(val)
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// node builds a wlm.Node from the fields of one record.
func (r *showRecord) node() wlm.Node {
	n := wlm.Node{Name: r.name}
	setState(&n, strings.Split(r.state, "+"))
	n.BootTime, _ = parseTime(r.boot)
	n.AgentStartTime, _ = parseTime(r.slurmdStart)
	if r.reason != nil {
		n.Reason, n.ReasonUser, n.ReasonTime = splitReason(*r.reason)
	}
	return n
}

// parseWeight reads a node's Weight as scontrol prints it (an unsigned
// 32-bit number); -1 if it is not one.
func parseWeight(s string) int64 {
	if !isDigits(s) {
		return -1
	}
	w, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return -1
	}
	return int64(w)
}

// splitReason separates "text [user@time]" into its parts. A reason
// without the suffix is returned whole.
func splitReason(r string) (text, user string, at time.Time) {
	r = strings.TrimSpace(r)
	m := reasonRE.FindStringSubmatch(r)
	if m == nil {
		return r, "", time.Time{}
	}
	t, ok := parseTime(m[3])
	if !ok {
		return r, "", time.Time{}
	}
	return strings.TrimSpace(m[1]), m[2], t
}

// squeueFormat is the output format the CLI adapter asks squeue for: job
// id, state, expected end (start + time limit) and the job's nodes. The
// node list is last because it is the only field that holds commas.
const squeueFormat = "%i|%T|%e|%N"

// queuedJob is one line of squeue output.
type queuedJob struct {
	ID    string
	State string
	End   time.Time // zero if Slurm does not know it
	Nodes []string
}

// parseSqueue parses squeue output in squeueFormat (with -h: no header).
// Each job's nodes are the ones keep accepts (nil: all of them); jobs left
// with none are dropped when keep is set. The node lists of all lines
// share one expansion budget (see MaxHostlistExpansion), and a name keep
// refuses is never allocated.
func parseSqueue(out []byte, keep func(name []byte) bool) ([]queuedJob, error) {
	var jobs []queuedJob
	e := newExpander()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("slurm: squeue line %q is not in the format %q", text.Cap(line, 200), squeueFormat)
		}
		end, ok := parseTime(f[2])
		if !ok {
			return nil, fmt.Errorf("slurm: squeue line %q: end time %q", text.Cap(line, 200), text.Cap(f[2], 40))
		}
		nodes, err := e.keep(f[3], keep)
		if err != nil {
			return nil, fmt.Errorf("slurm: squeue job %s: %w", text.Cap(f[0], 40), err)
		}
		if keep != nil && len(nodes) == 0 {
			continue
		}
		jobs = append(jobs, queuedJob{ID: f[0], State: f[1], End: end, Nodes: nodes})
	}
	return jobs, sc.Err()
}
