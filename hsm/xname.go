package hsm

import "strings"

// NormalizeXName returns the form HSM stores an xname in: lower case,
// without leading zeros in its numbers ("X3000C0S07B1N0" becomes
// "x3000c0s7b1n0"). Strings that are not node xnames come back lower-cased
// only.
func NormalizeXName(s string) string {
	s = strings.ToLower(s)
	if !xnameRE.MatchString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	digits := false // inside a run of digits that has shown a non-zero
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < '0' || c > '9':
			digits = false
			b.WriteByte(c)
		case c == '0' && !digits && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// a leading zero followed by more digits: drop it
		default:
			digits = true
			b.WriteByte(c)
		}
	}
	return b.String()
}
