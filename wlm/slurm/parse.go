package slurm

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

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
var freeTextKeys = []string{"OS=", "Reason=", "Comment=", "Extra=", "InstanceId=", "InstanceType="}

// keyRE finds the start of a "Key=" on a line of `scontrol show node`.
var keyRE = regexp.MustCompile(`(?:^|[ \t])([A-Za-z][A-Za-z0-9_]*)=`)

// reasonRE splits a Reason value into the text and the "[user@time]"
// scontrol appends.
var reasonRE = regexp.MustCompile(`^(.*?) ?\[([^\[\]@]*)@([^\[\]]*)\]$`)

// notFoundRE matches scontrol's line for a name it does not know.
var notFoundRE = regexp.MustCompile(`^Node (\S+) not found$`)

// showNodeOutput is what `scontrol show node <hostlist>` said.
type showNodeOutput struct {
	nodes    []wlm.Node
	notFound []string
	// unexpected holds lines that fit nowhere (for error messages).
	unexpected []string
}

// parseShowNode parses the multi-line output of `scontrol show node`
// (without -o). Records start with a "NodeName=" line; their other lines are
// indented. The free-text fields (OS, Reason, Comment, Extra) are alone on
// their lines, so their values are taken whole; on other lines, a value
// runs to the next " Key=". Unknown names show as "Node X not found".
func parseShowNode(out []byte) showNodeOutput {
	var res showNodeOutput
	var cur map[string]string
	var lastFree string // key of the last free-text field of cur
	flush := func() {
		if cur != nil {
			res.nodes = append(res.nodes, nodeFromFields(cur))
			cur = nil
		}
		lastFree = ""
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "NodeName="):
			flush()
			cur = map[string]string{}
			splitFields(line, cur)
		case line == "":
			flush()
		case cur != nil && (line[0] == ' ' || line[0] == '\t'):
			body := strings.TrimLeft(line, " \t")
			lastFree = ""
			for _, k := range freeTextKeys {
				if strings.HasPrefix(body, k) {
					key := strings.TrimSuffix(k, "=")
					cur[key] = body[len(k):]
					lastFree = key
					break
				}
			}
			if lastFree == "" {
				splitFields(body, cur)
			}
		case cur != nil && lastFree != "":
			// A free-text value holding a newline (set by someone
			// else; crus refuses such reasons) goes on here.
			cur[lastFree] += "\n" + line
		default:
			if m := notFoundRE.FindStringSubmatch(line); m != nil {
				flush()
				res.notFound = append(res.notFound, m[1])
				continue
			}
			res.unexpected = append(res.unexpected, line)
		}
	}
	flush()
	return res
}

// splitFields adds the Key=Value pairs of one line to into.
func splitFields(line string, into map[string]string) {
	locs := keyRE.FindAllStringSubmatchIndex(line, -1)
	for i, l := range locs {
		key := line[l[2]:l[3]]
		end := len(line)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if _, seen := into[key]; !seen {
			into[key] = strings.TrimSpace(line[l[1]:end])
		}
	}
}

// nodeFromFields builds a wlm.Node from the fields of one record.
func nodeFromFields(f map[string]string) wlm.Node {
	n := wlm.Node{Name: f["NodeName"]}
	setState(&n, strings.Split(f["State"], "+"))
	n.BootTime, _ = parseTime(f["BootTime"])
	n.AgentStartTime, _ = parseTime(f["SlurmdStartTime"])
	if r, ok := f["Reason"]; ok {
		n.Reason, n.ReasonUser, n.ReasonTime = splitReason(r)
	}
	return n
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
func parseSqueue(out []byte) ([]queuedJob, error) {
	var jobs []queuedJob
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("slurm: squeue line %q is not in the format %q", line, squeueFormat)
		}
		end, ok := parseTime(f[2])
		if !ok {
			return nil, fmt.Errorf("slurm: squeue line %q: end time %q", line, f[2])
		}
		nodes, err := ExpandHostlist(f[3])
		if err != nil {
			return nil, fmt.Errorf("slurm: squeue line %q: %w", line, err)
		}
		jobs = append(jobs, queuedJob{ID: f[0], State: f[1], End: end, Nodes: nodes})
	}
	return jobs, sc.Err()
}
