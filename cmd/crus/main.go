// Command crus runs rolling upgrades of compute nodes: the drop-in service
// for the removed Compute Rolling Upgrade Service, and a client for it.
//
//	crus serve [--config FILE] [--listen ADDR] ...   the REST API, the status page, /metrics; drives every session
//	crus demo  [--listen ADDR]                       the same, on a simulated cluster (no Cray system needed)
//	crus config check [--config FILE]                report every problem of a configuration; contact each backend once
//	crus create --starting-label L --upgrading-label L --failed-label L --upgrade-step-size N --upgrade-template-id T [--workload-manager-type slurm] [rollout options]
//	crus list | describe ID | delete ID | pause ID | resume ID | approve ID
//	crus watch ID                                    live progress; a plain line log when not on a terminal
//	crus timeline ID [--file F.svg]                  the timeline of the steps as SVG
//	crus plan --starting-label L --upgrade-step-size N   what-if: every strategy simulated from the live cluster
//
// The client commands talk to a crus serve (--server URL, env CRUS_SERVER,
// default http://127.0.0.1:8080) or, with --store DIR (or --store etcd),
// directly to a store through an executor built from the configuration.
// Output: -o table (default), json or yaml.
//
// 'crus COMMAND -h' (or --help) writes what COMMAND does, its usage and
// its flags to standard output, and exits 0.
//
// Exit codes: 0 success; 1 failure (refused, unreachable, not found); 2
// usage; for watch, 3 when the session ended with failed nodes and 4 when
// it was cancelled or aborted.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
)

const (
	exitOK        = 0
	exitFail      = 1
	exitUsage     = 2
	exitFailed    = 3
	exitCancelled = 4
)

var commands = map[string]func(args []string) int{
	"serve":    cmdServe,
	"demo":     cmdDemo,
	"config":   cmdConfig,
	"create":   cmdCreate,
	"list":     cmdList,
	"describe": cmdDescribe,
	"delete":   cmdAction("delete"),
	"pause":    cmdAction("pause"),
	"resume":   cmdAction("resume"),
	"approve":  cmdAction("approve"),
	"watch":    cmdWatch,
	"timeline": cmdTimeline,
	"plan":     cmdPlan,
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if isHelp(args[0]) || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" { // crus help COMMAND
			if _, ok := commands[args[1]]; ok {
				return run([]string{args[1], "-h"})
			}
		}
		usage(stdout)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "crus: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return cmd(args[1:])
}

// parseNoArgs is parseFlags for a command that takes no positional
// argument: one is a usage error, not ignored. A word left over is most
// often the value of a boolean flag written apart (--clear-failed false
// sets the flag and leaves "false"), which would do the opposite of what
// was asked.
func parseNoArgs(name string, fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return nil
	}
	arg := fs.Arg(0)
	hint := ""
	if _, err := strconv.ParseBool(arg); err == nil {
		hint = " (a boolean flag takes its value after =, as --clear-failed=false)"
	}
	err := fmt.Errorf("unexpected argument %q: crus %s takes none%s", arg, name, hint)
	fmt.Fprintf(stderr, "crus %s: %v\n", name, err)
	return err
}

// parseFlags parses args allowing flags after the positional arguments
// (crus describe ID -o json), as kubectl does; the positional arguments
// are left in fs.Args(). For -h (flag.ErrHelp) it writes the command's
// help to stdout; for a mistake, the usage to stderr after the flag
// package's message.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(stdout, fs)
			} else {
				printUsage(stderr, fs)
			}
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Re-parse nothing: leave the positional arguments for the caller.
	return fs.Parse(append([]string{"--"}, pos...))
}
