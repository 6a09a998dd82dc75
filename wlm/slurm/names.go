package slurm

import (
	"fmt"
	"regexp"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// nameRE is what a node name must look like before it goes on a command
// line or into a URL: letters, digits, '_', '.' and '-', not starting with
// '-' or '.', at most 128 characters. It leaves out everything with a
// meaning to scontrol or to hostlist syntax (spaces, '=', ',', '[', ']'),
// so a name such as "nid1 State=RESUME" or "-h" can never become an
// argument or an option.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidateName reports whether name can be a Slurm node name for the
// adapters: it returns nil or an error matching wlm.ErrInvalidArgument that
// says why not.
func ValidateName(name string) error {
	if nameRE.MatchString(name) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a node name the Slurm adapter accepts (letters, digits and \"_.-\", not starting with '-' or '.', at most 128 characters)", wlm.ErrInvalidArgument, name)
}

// splitValid returns the valid names, in order, and a *batch.NodeError for
// each invalid one.
func splitValid(names []string) (valid []string, refused []error) {
	valid = make([]string, 0, len(names))
	for _, n := range names {
		if err := ValidateName(n); err != nil {
			refused = append(refused, &batch.NodeError{Node: n, Err: err})
			continue
		}
		valid = append(valid, n)
	}
	return valid, refused
}

// validateReason checks a drain or fail reason: not empty, one line, no
// control characters (a newline would end the reason in scontrol's output
// and start a forged field).
func validateReason(op, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: %s needs a reason", wlm.ErrInvalidArgument, op)
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s reason %q contains a control character", wlm.ErrInvalidArgument, op, reason)
		}
	}
	return nil
}
