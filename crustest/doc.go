// Package crustest is a test kit for code that runs crus, in the spirit of
// net/http/httptest: an in-memory HPC system (HSM groups and node
// components, a boot orchestrator, a workload manager) on a virtual clock,
// with the fault injection crus's own tests use, and a checker of the
// promises crus makes. It is for tests only and never drives real nodes.
//
// # A session on the kit
//
//	w := crustest.New(crustest.Options{Nodes: 12, Busy: 0.5})
//	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
//	s, err := ex.Create(ctx, w.Spec(4)) // the starting group, in steps of 4
//	final, err := ex.Run(ctx, s.UpgradeID)
//	err = w.Check(ctx, final)
//
// Hours of draining and rebooting take no wall time: the World's clock is
// virtual and moves on whenever the executor waits on it. A reboot by its
// boot orchestrator takes the node down and brings it back after
// Options.RebootTime with a newer boot time; drains and fails survive it.
//
// # Your own workload manager
//
// To test a wlm.Manager of your own end to end, give it to the World with
// UseManager, along with a way to power its nodes off and on: the two
// methods of wlmtest.Rebooter, which the harness of your conformance test
// already has if it checks reboots. crus then drives your manager, the
// kit's boot orchestrator reboots your nodes through that power, and
// Check reads your manager to check the outcomes:
//
//	w := crustest.New(crustest.Options{Nodes: 8, WorkloadManagerType: "pbs"})
//	cluster := newMyCluster(w, w.Names()) // your manager's backend, on w's clock
//	w.UseManager(cluster.Manager(), cluster)
//	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
//
// Call UseManager before WLM (it panics after, and on a nil manager or
// power), and give crus what WLM returns, never your manager itself:
// Check fails if nodes were rebooted while your manager received no call
// through WLM.
//
// Your manager must know the nodes by the names w.Names returns (nid%06d
// of their node IDs, crus's default mapping) and take its time from the
// World (w.Now), so that jobs end and nodes come back in the World's time.
// Its reasons must read back as crus set them (see wlm.Manager.Drain):
// Check reports a reason that does not, and the nodes crus left drained
// because it did not recognise its own drain.
// If it implements wlm.Scheduler, a session of the scheduled strategy
// books its nodes there, and Check also finds any reservation a finished
// session left behind (the kit's own manager has reservations too); if it
// implements wlm.Steerer as well, the session steers its nodes there too
// (a Steerer that is not a Scheduler is not passed on to crus, which
// steers only when it books).
//
// # Faults
//
// FailNext makes the next calls of a backend method fail (transient or
// permanent errors), Outage every call during a time window (both panic
// on a name that is no backend method's, listing the names); SetLatency
// makes calls take their time while the World moves on; LoseNextAnswers
// and LoseAnswers make writes do their work and lose their answers (a
// connection cut after the request was served); SetFaults
// makes a node fail to boot, never return, refuse to drain, or drain
// slowly; BreakTemplate fails whole boot sessions; StartJob, AdminDrain,
// AdminFail, AdminResume, SetDown, AddMember and RemoveMember act as users
// and operators do, and Schedule runs any of these at a given time during
// a session.
//
// # Clocks
//
// The virtual clock serves one Run at a time: a Run that waits moves the
// world for everyone (see crus.Clock). To run several sessions at once,
// set Options.RealClock and run the test inside synctest.Test: the World
// then follows the real clock, which in the bubble moves only when every
// goroutine waits, and the executors keep their default clock.
package crustest
