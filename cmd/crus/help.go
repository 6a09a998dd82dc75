package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// help is what `crus COMMAND -h` says before the flags.
type help struct {
	summary string // what the command does, one line
	usage   string // how it is called
}

// helps holds every command's help, by the name of its flag set after
// "crus " (config's is "config check").
var helps = map[string]help{
	"serve": {"serve the REST API, the status page and /metrics, and drive every session in progress",
		"crus serve [--config FILE] [flags]"},
	"demo": {"run crus serve on a simulated cluster whose clock runs faster than real time (no Cray system needed)",
		"crus demo [--listen ADDR] [--nodes N] [--step N] [--speed X] [flags]"},
	"config check": {"report every problem of a configuration, then contact each backend once",
		"crus config check [--config FILE] [flags]"},
	"create": {"create an upgrade session",
		"crus create --starting-label L --upgrading-label L --failed-label L --upgrade-step-size N --upgrade-template-id T [flags]"},
	"list": {"list the upgrade sessions", "crus list [flags]"},
	"describe": {"show a session: its state, counts, failed and skipped nodes, and messages",
		"crus describe UPGRADE_ID [flags]"},
	"delete": {"cancel a session in progress (nodes not yet taken stay in service), or remove the record of one that ended",
		"crus delete UPGRADE_ID [flags]"},
	"pause": {"pause a session: the nodes in flight finish, no new node is taken until crus resume",
		"crus pause UPGRADE_ID [flags]"},
	"resume": {"let a paused session take new nodes again", "crus resume UPGRADE_ID [flags]"},
	"approve": {"let a session that waits for approval go on past its canary batches",
		"crus approve UPGRADE_ID [flags]"},
	"watch": {"follow a session live until it ends; exit 3 if nodes failed, 4 if it was cancelled or aborted",
		"crus watch UPGRADE_ID [flags]"},
	"timeline": {"draw the timeline of a session's steps as SVG", "crus timeline UPGRADE_ID [--file F.svg] [flags]"},
	"plan": {"what-if: simulate every strategy on a group's or session's nodes from the live cluster; changes nothing",
		"crus plan (--starting-label L | --session ID) [--upgrade-step-size N] [flags]"},
}

// newFlagSet returns the flag set of a command. Its errors go to stderr;
// parseFlags prints the help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("crus "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// isHelp reports whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}

// parseExit is the exit code of a command whose flags did not parse: 0
// when they asked for the help (printed), 2 otherwise.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// printHelp writes the help of fs's command: what it does, its usage,
// its flags.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	h := helps[strings.TrimPrefix(fs.Name(), "crus ")]
	fmt.Fprintf(w, "%s: %s\n\nusage: %s\n\nflags:\n", fs.Name(), h.summary, h.usage)
	printFlags(w, fs)
}

// printUsage writes the usage of fs's command after a mistake.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	h := helps[strings.TrimPrefix(fs.Name(), "crus ")]
	fmt.Fprintf(w, "usage: %s\n'%s -h' describes the flags.\n", h.usage, fs.Name())
}

// printFlags writes fs's flags as flag.PrintDefaults does, but once for
// the names of one variable (-o, -output).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	names := map[uintptr][]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if p := variable(f); p != 0 {
			names[p] = append(names[p], "-"+f.Name)
		}
	})
	done := map[uintptr]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		label := "-" + f.Name
		if p := variable(f); p != 0 {
			if done[p] {
				return
			}
			done[p] = true
			label = strings.Join(names[p], ", ")
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			label += " " + typ
		}
		if !isZeroValue(f) {
			if typ == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "  %s\n    \t%s\n", label, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// variable identifies the variable behind a flag (the flag package's
// values point to it), or is 0.
func variable(f *flag.Flag) uintptr {
	v := reflect.ValueOf(f.Value)
	if v.Kind() != reflect.Pointer {
		return 0
	}
	return v.Pointer()
}

// isZeroValue reports whether a flag's default is its type's zero value,
// which the help does not show.
func isZeroValue(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	return !ok || f.DefValue == v.String()
}

// usage writes the list of the commands, each with what it does.
func usage(w io.Writer) {
	names := make([]string, 0, len(helps))
	for n := range helps {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(w, "usage: crus COMMAND [flags] [args]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, helps[n].summary)
	}
	fmt.Fprintf(w, "\n'crus COMMAND -h' describes one.\n")
}
