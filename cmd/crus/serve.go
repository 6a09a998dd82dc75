package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/demo"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/server"
	"github.com/crus-go/crus/metrics"
)

func newLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// cmdServe runs the API, the page, the metrics and every session in
// progress until SIGTERM or SIGINT.
func cmdServe(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, args)
}

// serve is cmdServe until ctx ends.
func serve(ctx context.Context, args []string) int {
	fs := newFlagSet("serve")
	cfgPath := configFlags(fs)
	verbose := fs.Bool("v", false, "log debug records")
	if err := parseNoArgs("serve", fs, args); err != nil {
		return parseExit(err)
	}
	log := newLogger(*verbose)
	cfg, problems := loadConfig(*cfgPath, fs, os.Getenv)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "crus serve:", p)
		}
		return exitUsage
	}
	b, problems := cfg.connect(log)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "crus serve:", p)
		}
		_ = b.Close()
		return exitFail
	}
	defer b.Close()

	var excfg crus.Config
	if testBackends != nil {
		testBackends(b, &excfg)
	}
	m := metrics.New(metrics.Config{ProcessMetrics: true, Logger: log})
	groups, manager, boot := m.WrapGroups(b.groups), m.WrapManager(b.manager), m.WrapBoot(b.boot)
	hub := api.NewHub()
	var driver *crus.Driver
	excfg.Store, excfg.Logger, excfg.PollInterval, excfg.CallTimeout = b.store, log, cfg.Executor.PollInterval, cfg.Executor.CallTimeout
	excfg.Mapper = crus.NIDMapper{Resolver: groups.(hsm.NIDResolver), Format: cfg.Executor.NodeNameFormat}
	excfg.OnEvent = func(ev crus.Event) {
		hub.Publish(ev)
		if ev.Kind == crus.EventCreated && driver != nil {
			driver.Kick() // drive the new session now, not at the next rescan
		}
	}
	ex, err := crus.NewExecutor(groups, manager, boot, excfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crus serve:", err)
		return exitFail
	}
	m.Watch(ex)
	// The driving part: on etcd, a replica among others (the store leases
	// the sessions); on a directory, every session of the store.
	var leaser crus.Leaser
	if b.etcd != nil {
		leaser = b.etcd
	}
	driver, err = crus.NewDriver(ex, leaser, crus.DriverConfig{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crus serve:", err)
		return exitFail
	}
	run := driver.Run
	h, err := server.New(server.Options{
		Executor: ex, Store: b.store, Hub: hub, Metrics: m, Auth: b.auth, PublicReads: cfg.Auth.PublicReads, Logger: log,
		DryRuns: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crus serve:", err)
		return exitFail
	}
	return serveUntil(ctx, cfg.Listen, h, run, log)
}

// newHTTPServer returns the server of h, with the bounds every
// connection lives under: 10 s to send a request's head, of at most
// 64 KiB, and 2 minutes idle between two requests. Without the last, a
// connection that had made one request stayed open for as long as its
// client liked (http.Server's IdleTimeout defaults to ReadTimeout, which
// cannot be set: it would end every event stream), and 5,000 of them
// held 5,000 file descriptors and 250 MB of the demo. The API bounds the
// reading of a body and the writing of an answer itself
// (api.Config.BodyReadTimeout, WriteTimeout, StreamWriteTimeout).
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// serveUntil serves h on addr and runs drive until ctx ends (SIGTERM or
// SIGINT), then shuts both down: the HTTP server finishes the requests in
// flight, and drive's sessions stop between two calls (every record
// consistent).
func serveUntil(ctx context.Context, addr string, h *server.Handler, drive func(context.Context) error, log *slog.Logger) int {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(stderr, "crus:", err)
		return exitFail
	}
	srv := newHTTPServer(h)
	srv.RegisterOnShutdown(h.Close)
	fmt.Fprintf(stderr, "crus: serving on http://%s (API %s, page /, metrics /metrics)\n", ln.Addr(), server.APIPath)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := drive(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("driving sessions", "err", err)
		}
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		fmt.Fprintln(stderr, "crus:", err)
		stop()
		wg.Wait()
		return exitFail
	}
	log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("HTTP shutdown", "err", err)
	}
	wg.Wait()
	log.Info("stopped")
	return exitOK
}

// demoMemoryLimit is the demo's soft memory limit (GOMEMLIMIT overrides
// it).
const demoMemoryLimit = 512 << 20

// speeds is the range of demo --speed.
var speeds = strconv.FormatFloat(demo.MinSpeed, 'f', -1, 64) + " to " + strconv.FormatFloat(demo.MaxSpeed, 'f', -1, 64)

// cmdDemo serves the same service and page on the in-memory backends of a
// simulated cluster whose clock runs faster than real time.
func cmdDemo(args []string) int {
	fs := newFlagSet("demo")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	nodes := fs.Int("nodes", 512, fmt.Sprintf("nodes of the simulated cluster, 1 to %d", demo.MaxNodes))
	step := fs.Int("step", 32, "upgrade step size, at least 1")
	speed := fs.Float64("speed", 120, "virtual seconds per real second, "+speeds)
	seed := fs.Uint64("seed", 1, "random seed")
	pause := fs.Duration("pause", 20*time.Second, "real time between the end of a session and the next, 0 or more")
	keep := fs.Int("keep", demo.DefaultKeep, "ended demo sessions kept for the page and the API (older ones are deleted), 1 or more; -1 keeps all")
	verbose := fs.Bool("v", false, "log what the executor does")
	auto := fs.Bool("sessions", true, "run demo sessions one after the other (false: none; create your own with crus create)")
	if err := parseNoArgs("demo", fs, args); err != nil {
		return parseExit(err)
	}
	// Refused before anything starts: a value out of range was once
	// replaced by the default while the banner showed it, and a NaN or
	// huge speed froze the simulated clock.
	var bad []string
	if *nodes < 1 || *nodes > demo.MaxNodes {
		bad = append(bad, fmt.Sprintf("--nodes %d: want 1 to %d", *nodes, demo.MaxNodes))
	}
	if *step < 1 {
		bad = append(bad, fmt.Sprintf("--step %d: want at least 1", *step))
	}
	if !(*speed >= demo.MinSpeed && *speed <= demo.MaxSpeed) { // NaN fails every comparison
		bad = append(bad, fmt.Sprintf("--speed %g: want %s", *speed, speeds))
	}
	if *pause < 0 {
		bad = append(bad, fmt.Sprintf("--pause %v: want 0 or more (--sessions=false runs no demo session)", *pause))
	}
	if *keep < -1 || *keep == 0 {
		bad = append(bad, fmt.Sprintf("--keep %d: want 1 or more, or -1 to keep every session", *keep))
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintf(stderr, "crus demo: %s\n", b)
		}
		return exitUsage
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = newLogger(false)
	}
	// The simulated cluster and the session's records stay live (some
	// 300 MB at 160,000 nodes) while every request of the page copies a
	// record: collect before the heap doubles, within a soft limit,
	// unless GOMEMLIMIT says otherwise.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(demoMemoryLimit)
	}
	d, err := demo.New(demo.Options{Nodes: *nodes, Step: *step, Speed: *speed, Seed: *seed, Keep: *keep, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "crus demo:", err)
		return exitFail
	}
	if *auto {
		id, err := d.Start(context.Background())
		if err != nil {
			fmt.Fprintln(stderr, "crus demo:", err)
			return exitFail
		}
		fmt.Fprintf(stderr, "crus demo: %d simulated nodes, steps of %d, clock %gx real time; session %s\n", *nodes, *step, *speed, id)
	} else {
		*pause = -1
		fmt.Fprintf(stderr, "crus demo: %d simulated nodes, clock %gx real time; groups %s, %s, %s, template %s\n",
			*nodes, *speed, fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, fake.Template)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serveUntil(ctx, *listen, d.Handler, func(ctx context.Context) error { return d.Run(ctx, *pause) }, log)
}

// testBackends, set by the tests, replaces backends the tests cannot
// reach from outside the process (the in-memory workload manager) and
// sets the executor's clock.
var testBackends func(b *backends, cfg *crus.Config)
