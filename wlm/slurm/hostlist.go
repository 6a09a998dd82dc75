package slurm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/crus-go/crus/internal/text"
)

// MaxHostlistExpansion bounds how many names ExpandHostlist produces, so
// that a malformed or hostile expression ("n[0-999999999]") cannot exhaust
// memory, and how many the hostlists of one whole answer (an squeue
// output, a slurmrestd jobs document) may stand for together. It is far
// above the size of any real machine.
const MaxHostlistExpansion = 1 << 20

// CompressHostlist returns a Slurm hostlist expression naming exactly the
// given nodes, as short as the usual rules allow: names that differ only in
// a trailing number of the same width are folded into one bracketed range
// list, as in "nid[000001-000050,000077]". Duplicates are dropped and the
// result is sorted, so it does not depend on the order of names.
//
// ExpandHostlist(CompressHostlist(names)) gives the sorted, de-duplicated
// names back for any names that pass ValidateName.
func CompressHostlist(names []string) string {
	type key struct {
		prefix string
		width  int
	}
	groups := map[key][]uint64{}
	var plain []string
	for _, n := range names {
		prefix, num, width, ok := splitSuffix(n)
		if !ok {
			plain = append(plain, n)
			continue
		}
		k := key{prefix, width}
		groups[k] = append(groups[k], num)
	}
	// Items sort by prefix, then number, so that n9 comes before n10.
	type item struct {
		prefix string
		num    uint64
		width  int
		text   string
	}
	var items []item
	slices.Sort(plain)
	plain = slices.Compact(plain)
	for _, p := range plain {
		items = append(items, item{prefix: p, width: -1, text: p})
	}
	for k, nums := range groups {
		slices.Sort(nums)
		nums = slices.Compact(nums)
		pad := func(v uint64) string {
			s := strconv.FormatUint(v, 10)
			if len(s) < k.width {
				s = strings.Repeat("0", k.width-len(s)) + s
			}
			return s
		}
		if len(nums) == 1 {
			items = append(items, item{k.prefix, nums[0], k.width, k.prefix + pad(nums[0])})
			continue
		}
		var b strings.Builder
		b.WriteString(k.prefix)
		b.WriteByte('[')
		for i := 0; i < len(nums); {
			j := i
			for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
				j++
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(pad(nums[i]))
			if j > i {
				b.WriteByte('-')
				b.WriteString(pad(nums[j]))
			}
			i = j + 1
		}
		b.WriteByte(']')
		items = append(items, item{k.prefix, nums[0], k.width, b.String()})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		if a.num != b.num {
			return cmp.Compare(a.num, b.num)
		}
		return cmp.Compare(a.width, b.width)
	})
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = it.text
	}
	return strings.Join(parts, ",")
}

// splitSuffix splits a name into a prefix and a trailing decimal number of
// width digits. Names without a trailing number (or with one too long for a
// uint64) report ok false.
func splitSuffix(name string) (prefix string, num uint64, width int, ok bool) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	digits := name[i:]
	if digits == "" || len(digits) > 18 {
		return "", 0, 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	return name[:i], v, len(digits), true
}

// ErrHostlist is matched by the errors of ExpandHostlist.
var ErrHostlist = errors.New("slurm: malformed hostlist")

// maxExpandedName bounds the length of one name a hostlist expands to, as
// ValidateName bounds the names the adapters accept: a longer one cannot
// be a node crus asked about, and the bound keeps a few bytes of output
// from standing for names of any size.
const maxExpandedName = 128

// ExpandHostlist returns the names a Slurm hostlist expression stands for,
// in the order written: "nid[000001-000003,000007],login1" gives nid000001,
// nid000002, nid000003, nid000007 and login1. Several bracket groups in one
// name multiply out ("r[1-2]n[1-2]" gives r1n1, r1n2, r2n1, r2n2). A range
// whose low end has a leading zero is zero-padded to its width, as Slurm
// does. An empty expression gives no names.
//
// Malformed expressions (unbalanced brackets, a range going down, a
// non-numeric range), expressions of more than MaxHostlistExpansion names
// and names longer than 128 bytes are errors matching ErrHostlist. The
// adapters go further: all the hostlists of one answer (every line of one
// squeue output, every job of one slurmrestd answer) share one budget of
// MaxHostlistExpansion names.
func ExpandHostlist(expr string) ([]string, error) {
	var out []string
	e := newExpander()
	err := e.each(expr, func(name []byte) { out = append(out, string(name)) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// expander expands hostlist expressions within one budget of names: all
// the expressions of one answer share it, so that a few hundred bytes of
// output ("n[0-1048575]" on each of eight lines) cannot stand for
// millions of names.
type expander struct {
	left int    // names the budget still allows
	buf  []byte // the name being built
}

func newExpander() *expander { return &expander{left: MaxHostlistExpansion} }

// each calls fn with each name expr stands for, in order, after checking
// the whole expression: a malformed one, or one that would exceed the
// budget, is an error and fn is not called at all. The bytes passed to fn
// are only valid during the call.
func (e *expander) each(expr string, fn func(name []byte)) error {
	var pats [][]segment
	total := 0
	for _, part := range splitTop(expr) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		segs, n, err := parsePattern(part, e.left-total)
		if err != nil {
			return fmt.Errorf("%w %q: %v", ErrHostlist, text.Cap(expr, 200), err)
		}
		pats = append(pats, segs)
		total += n
	}
	e.left -= total
	for _, segs := range pats {
		e.buf = e.buf[:0]
		e.gen(segs, fn)
	}
	return nil
}

// keep expands expr and returns the names keep accepts (nil: all),
// allocating only those.
func (e *expander) keep(expr string, keep func(name []byte) bool) ([]string, error) {
	var out []string
	err := e.each(expr, func(name []byte) {
		if keep == nil || keep(name) {
			out = append(out, string(name))
		}
	})
	return out, err
}

// gen appends every combination of segs to e.buf and calls fn for each.
func (e *expander) gen(segs []segment, fn func([]byte)) {
	if len(segs) == 0 {
		fn(e.buf)
		return
	}
	s, rest := segs[0], segs[1:]
	mark := len(e.buf)
	if s.ranges == nil {
		e.buf = append(e.buf, s.lit...)
		e.gen(rest, fn)
		e.buf = e.buf[:mark]
		return
	}
	for _, r := range s.ranges {
		for v := r.lo; ; v++ {
			e.buf = e.buf[:mark]
			e.buf = appendPadded(e.buf, v, r.width)
			e.gen(rest, fn)
			if v == r.hi {
				break
			}
		}
	}
	e.buf = e.buf[:mark]
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// segment is a literal part of a name, or (ranges not nil) a bracket group.
type segment struct {
	lit    string
	ranges []numRange
}

type numRange struct {
	lo, hi uint64
	width  int // zero-padded to this many digits (0: no padding)
}

// parsePattern parses one comma-free (outside brackets) expression and
// returns its segments and how many names it stands for, refusing it if
// that is more than limit or a name would be longer than maxExpandedName.
func parsePattern(s string, limit int) ([]segment, int, error) {
	var segs []segment
	count, longest := uint64(1), 0
	for s != "" {
		open := strings.IndexByte(s, '[')
		if open < 0 {
			if strings.IndexByte(s, ']') >= 0 {
				return nil, 0, errors.New("']' without '['")
			}
			segs = append(segs, segment{lit: s})
			longest += len(s)
			break
		}
		closing := strings.IndexByte(s[open:], ']')
		if closing < 0 {
			return nil, 0, errors.New("'[' without ']'")
		}
		closing += open
		prefix, body := s[:open], s[open+1:closing]
		if strings.IndexByte(prefix, ']') >= 0 || strings.IndexByte(body, '[') >= 0 {
			return nil, 0, errors.New("nested or unbalanced brackets")
		}
		if prefix != "" {
			segs = append(segs, segment{lit: prefix})
			longest += len(prefix)
		}
		ranges, n, digits, err := parseRanges(body, limit)
		if err != nil {
			return nil, 0, err
		}
		segs = append(segs, segment{ranges: ranges})
		longest += digits
		if n > uint64(limit)/count {
			return nil, 0, errTooMany
		}
		count *= n
		s = s[closing+1:]
	}
	if longest > maxExpandedName {
		return nil, 0, fmt.Errorf("names of up to %d bytes, longer than %d", longest, maxExpandedName)
	}
	if count > uint64(limit) {
		return nil, 0, errTooMany
	}
	return segs, int(count), nil
}

// parseRanges parses the inside of brackets, "1-3,7,010-012": the ranges,
// how many numbers they hold (at most limit) and the widest number.
func parseRanges(body string, limit int) ([]numRange, uint64, int, error) {
	if body == "" {
		return nil, 0, 0, errors.New("empty brackets")
	}
	var out []numRange
	var n uint64
	widest := 0
	for r := range strings.SplitSeq(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isDigits(lo) || isRange && !isDigits(hi) {
			return nil, 0, 0, fmt.Errorf("range %q is not numeric", text.Cap(r, 40))
		}
		if !isRange {
			hi = lo
		}
		if len(lo) > 18 || len(hi) > 18 {
			return nil, 0, 0, fmt.Errorf("range %q has too many digits", text.Cap(r, 40))
		}
		a, _ := strconv.ParseUint(lo, 10, 64)
		b, _ := strconv.ParseUint(hi, 10, 64)
		if b < a {
			return nil, 0, 0, fmt.Errorf("range %q goes down", r)
		}
		if b-a >= uint64(limit)-min(n, uint64(limit)) {
			return nil, 0, 0, errTooMany
		}
		n += b - a + 1
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		widest = max(widest, width, len(strconv.FormatUint(b, 10)))
		out = append(out, numRange{lo: a, hi: b, width: width})
	}
	return out, n, widest, nil
}

var errTooMany = fmt.Errorf("more than %d names in one answer", MaxHostlistExpansion)

// splitTop splits on the commas outside brackets.
func splitTop(expr string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, expr[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, expr[start:])
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
