package fake

import "time"

// This file lets tests reboot nodes by hand (PowerOff, PowerOn: the
// conformance harness of the World's workload manager) and lets a
// workload manager that is not the World's own follow the reboots of the
// World's boot sessions (SetPowerHook: package crustest, for an outside
// wlm.Manager).

// PowerHook is told about the reboots of the World's boot sessions.
type PowerHook struct {
	// Off is called as a boot session powers a node off. An error fails
	// the node's boot, with the error's text as the boot orchestrator's
	// reason.
	Off func(xname, name string) error
	// On is called when the node's boot ends: back is true when it has
	// booted and its workload-manager agent registers, false when it
	// failed to boot or booted but never registers.
	On func(xname, name string, back bool)
}

type powerState struct {
	hook PowerHook
	errs map[string]string // xname -> why Off failed, until its boot ends
}

// SetPowerHook installs h (the zero PowerHook removes it). Its functions
// run as functions of Schedule, at the virtual time of the change, without
// the World's lock: they may call the World's methods.
func (w *World) SetPowerHook(h PowerHook) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.power = powerState{hook: h, errs: map[string]string{}}
}

// powerOff tells the hook a boot session powers n off. Callers hold the
// lock.
func (w *World) powerOff(n *node) {
	off := w.power.hook.Off
	if off == nil {
		return
	}
	w.scheduleFn(w.now, func() {
		if err := off(n.xname, n.name); err != nil {
			w.locked(func() { w.power.errs[n.xname] = err.Error() })
		}
	})
}

// powerOn tells the hook n's boot has ended, and whether n is back.
// Callers hold the lock.
func (w *World) powerOn(n *node, back bool) {
	on := w.power.hook.On
	if on == nil {
		return
	}
	w.scheduleFn(w.now, func() { on(n.xname, n.name, back) })
}

// bootFailure says whether n's boot fails, and why: a BootFails fault,
// or a hook that could not power it off. Callers hold the lock.
func (w *World) bootFailure(n *node) (string, bool) {
	if reason, ok := w.power.errs[n.xname]; ok {
		delete(w.power.errs, n.xname)
		return reason, true
	}
	if !n.faults.BootFails {
		return "", false
	}
	if n.faults.BootError != "" {
		return n.faults.BootError, true
	}
	return "failed to boot", true
}

// PowerOff stops a node by hand, as the first half of a reboot that no
// boot session asked for: its agent stops answering and its jobs are
// lost. Drain and fail marks stay.
func (w *World) PowerOff(xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.up, n.jobs = false, nil
		w.update(n)
	}
}

// PowerOn boots a node stopped by PowerOff: its agent answers again and
// reports that it booted now. Drain and fail marks stay.
func (w *World) PowerOn(xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.up = true
		n.bootTime, n.agentStart = w.now.Truncate(time.Second), w.now.Truncate(time.Second)
		n.completingUntil = time.Time{}
		w.update(n)
		w.kick = true
	}
}
