package slurm

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/text"
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

// MaxReason is the longest drain or fail reason, in bytes once cleaned,
// that the adapters pass on to Slurm. A longer one is refused for every
// node of the call, with a *batch.NodeError wrapping
// wlm.ErrInvalidArgument (permanent): retrying cannot make it shorter.
//
// Why a bound: Linux refuses any single argument over 128 KiB
// (MAX_ARG_STRLEN), so a longer reason was a command that could never run,
// an error of the whole call, and crus retried it forever. 1 KiB is far
// above what anyone reads in `sinfo -R` and leaves room for crus's prefix;
// callers cap the whole reason to it (the core caps to
// internal/text.MaxReason, which a test keeps no larger).
const MaxReason = wlm.MaxReason

// cleanReason returns the reason as the adapters send it: on one line, with
// control characters (a traceback's newlines and tabs, which scontrol would
// take as the end of the reason) made spaces and runs of blanks collapsed.
// An empty reason is an error matching wlm.ErrInvalidArgument for the
// whole call; a reason longer than MaxReason is that error for each of the
// named nodes.
func cleanReason(op, reason string, names []string) (string, error) {
	clean := text.Clean(reason, 0)
	switch {
	case clean == "":
		return "", fmt.Errorf("%w: %s needs a reason", wlm.ErrInvalidArgument, op)
	case len(clean) > MaxReason:
		err := fmt.Errorf("%w: %s reason of %d bytes is longer than the %d the Slurm adapters take: %s",
			wlm.ErrInvalidArgument, op, len(clean), MaxReason, text.Cap(clean, 120))
		errs := make([]error, 0, len(names))
		for _, n := range names {
			errs = append(errs, &batch.NodeError{Node: n, Err: err})
		}
		if len(errs) == 0 {
			return "", err
		}
		return "", errors.Join(errs...)
	}
	return clean, nil
}
