package slurm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxHostlistExpansion bounds how many names ExpandHostlist produces, so
// that a malformed or hostile expression ("n[0-999999999]") cannot exhaust
// memory. It is far above the size of any real machine.
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

// ExpandHostlist returns the names a Slurm hostlist expression stands for,
// in the order written: "nid[000001-000003,000007],login1" gives nid000001,
// nid000002, nid000003, nid000007 and login1. Several bracket groups in one
// name multiply out ("r[1-2]n[1-2]" gives r1n1, r1n2, r2n1, r2n2). A range
// whose low end has a leading zero is zero-padded to its width, as Slurm
// does. An empty expression gives no names.
//
// Malformed expressions (unbalanced brackets, a range going down, a
// non-numeric range) and expressions of more than MaxHostlistExpansion
// names are errors matching ErrHostlist.
func ExpandHostlist(expr string) ([]string, error) {
	var out []string
	for _, part := range splitTop(expr) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		names, err := expandOne(part, MaxHostlistExpansion-len(out))
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrHostlist, expr, err)
		}
		out = append(out, names...)
	}
	return out, nil
}

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

// expandOne expands one comma-free (outside brackets) host expression into
// at most limit names.
func expandOne(s string, limit int) ([]string, error) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		if strings.IndexByte(s, ']') >= 0 {
			return nil, errors.New("']' without '['")
		}
		if limit < 1 {
			return nil, fmt.Errorf("more than %d names", MaxHostlistExpansion)
		}
		return []string{s}, nil
	}
	closing := strings.IndexByte(s[open:], ']')
	if closing < 0 {
		return nil, errors.New("'[' without ']'")
	}
	closing += open
	prefix, body, rest := s[:open], s[open+1:closing], s[closing+1:]
	if strings.ContainsAny(prefix, "]") || strings.ContainsAny(body, "[") {
		return nil, errors.New("nested or unbalanced brackets")
	}
	values, err := expandRanges(body, limit)
	if err != nil {
		return nil, err
	}
	var tails []string
	if rest == "" {
		tails = []string{""}
	} else {
		tails, err = expandOne(rest, limit/max(len(values), 1))
		if err != nil {
			return nil, err
		}
	}
	if len(values)*len(tails) > limit {
		return nil, fmt.Errorf("more than %d names", MaxHostlistExpansion)
	}
	out := make([]string, 0, len(values)*len(tails))
	for _, v := range values {
		for _, t := range tails {
			out = append(out, prefix+v+t)
		}
	}
	return out, nil
}

// expandRanges expands the inside of brackets: "1-3,7,010-012".
func expandRanges(body string, limit int) ([]string, error) {
	if body == "" {
		return nil, errors.New("empty brackets")
	}
	var out []string
	for _, r := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isDigits(lo) || isRange && !isDigits(hi) {
			return nil, fmt.Errorf("range %q is not numeric", r)
		}
		if !isRange {
			hi = lo
		}
		if len(lo) > 18 || len(hi) > 18 {
			return nil, fmt.Errorf("range %q has too many digits", r)
		}
		a, _ := strconv.ParseUint(lo, 10, 64)
		b, _ := strconv.ParseUint(hi, 10, 64)
		if b < a {
			return nil, fmt.Errorf("range %q goes down", r)
		}
		if remaining := limit - len(out); remaining <= 0 || b-a >= uint64(remaining) {
			return nil, fmt.Errorf("more than %d names", MaxHostlistExpansion)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for v := a; ; v++ {
			s := strconv.FormatUint(v, 10)
			if len(s) < width {
				s = strings.Repeat("0", width-len(s)) + s
			}
			out = append(out, s)
			if v == b {
				break
			}
		}
	}
	return out, nil
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
