package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/crus-go/crus/internal/text"
)

// Command is one run of a Slurm client program.
type Command struct {
	Path string   // the program: a name looked up in $PATH, or a path
	Args []string // its arguments, without the program name
	// Env holds KEY=VALUE settings added to the environment the program
	// inherits (SLURM_CONF and the output settings the adapter relies on).
	Env []string
}

// String renders the command for messages and logs.
func (c Command) String() string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

// Runner runs a command to completion and returns what it wrote to its
// standard output and standard error. A command that ran and exited
// non-zero returns its output and an *exec.ExitError (or any error
// wrapping one); a command that could not run returns another error. It
// must stop the command when ctx is done.
//
// The default, Exec, starts the program directly (never through a shell).
// Tests and sites wrap it, for instance to count or log invocations, or to
// run the commands on another host.
type Runner func(ctx context.Context, c Command) (stdout, stderr []byte, err error)

// Exec is the default Runner: exec.CommandContext, no shell, the
// environment inherited plus c.Env. On cancellation the program gets
// SIGTERM, then SIGKILL 5 seconds later. It keeps at most MaxOutput bytes
// of standard output and 1 MiB of standard error: a program that writes
// more is an error (and is not waited for beyond the usual delay).
func Exec(ctx context.Context, c Command) (stdout, stderr []byte, err error) {
	return execLimited(ctx, c, MaxOutput, maxStderr)
}

// MaxOutput bounds the standard output Exec keeps. `scontrol show node`
// prints about 730 bytes a node (Slurm 22.05), 73 MB for 100,000 nodes;
// this is over three times that.
const MaxOutput = 256 << 20

const maxStderr = 1 << 20

// ErrOutputTooLarge is matched by the error of a command that wrote more
// than Exec keeps.
var ErrOutputTooLarge = errors.New("slurm: command output too large")

func execLimited(ctx context.Context, c Command, maxOut, maxErr int) (stdout, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(cmd.Environ(), c.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, errb := &capWriter{max: maxOut}, &capWriter{max: maxErr}
	cmd.Stdout, cmd.Stderr = out, errb
	err = cmd.Run()
	for _, w := range []*capWriter{out, errb} {
		if w.over {
			err = fmt.Errorf("%w: more than %d bytes (%v)", ErrOutputTooLarge, w.max, err)
		}
	}
	return out.buf.Bytes(), errb.buf.Bytes(), err
}

// capWriter keeps at most max bytes and fails the write that would go
// past them, which stops the copy from the program's pipe.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		w.over = true
		return 0, ErrOutputTooLarge
	}
	return w.buf.Write(p)
}

// CommandError reports a Slurm command that failed: it exited non-zero, or
// could not be run at all.
type CommandError struct {
	Command  string // the command line, for the message
	ExitCode int    // -1 if it did not exit normally (not found, killed)
	Message  string // what it said on standard error (or output), cleaned and capped
	Err      error  // the underlying error from the Runner
}

func (e *CommandError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Err.Error()
	}
	if e.ExitCode >= 0 {
		return fmt.Sprintf("slurm: %s: exit status %d: %s", e.Command, e.ExitCode, msg)
	}
	return fmt.Sprintf("slurm: %s: %s", e.Command, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// exited reports whether the command ran and Slurm refused the request
// (as opposed to the program being missing or killed).
func (e *CommandError) exited() bool { return e.ExitCode > 0 }

// newCommandError builds a CommandError from a Runner's results.
func newCommandError(c Command, stdout, stderr []byte, err error) *CommandError {
	// The command line can be long (a hostlist, a reason): keep the
	// start of it.
	ce := &CommandError{Command: text.Cap(c.String(), maxCommandText), ExitCode: -1, Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	msg := text.Clean(string(stderr), text.MaxDetail)
	if msg == "" {
		msg = text.Clean(string(stdout), text.MaxDetail)
	}
	ce.Message = msg
	return ce
}

// maxCommandText bounds the command line shown in errors and logs.
const maxCommandText = 512
