package fake

import "time"

// rebootTime returns how long the node's current reboot takes (see
// rebootDraw); n.reboots already counts it.
func (w *World) rebootTime(n *node) time.Duration {
	return rebootDraw(w.opts, n.idx, n.reboots)
}

// rebootDraw returns the duration of the k-th reboot (from 1) of the node
// added idx-th: RebootTime ± up to RebootJitter, uniform, drawn from the
// seed, the node and k alone, and at least minReboot. Two worlds with the same seed give a node the
// same duration for its k-th reboot whatever else happens and in whatever
// order nodes reboot, so strategies compared on one seed face the same
// reboots.
func rebootDraw(o Options, idx, k int) time.Duration {
	d := o.RebootTime
	if j := o.RebootJitter; j > 0 {
		h := mix(mix(mix(o.Seed^0x2545f4914f6cdd1d)^uint64(idx)) ^ uint64(k))
		d += time.Duration(h%uint64(2*j+1)) - j
	}
	return max(d, minReboot)
}

// minReboot is the least a reboot takes, whatever RebootJitter says: a
// reboot that took no time would boot the node before it went down.
const minReboot = time.Second

// mix is splitmix64's finaliser: a bijection of 64-bit words whose every
// output bit depends on every input bit.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// FirstReboots returns the sum, over every node, of the duration its first
// reboot takes: the least node-time an upgrade of all of them can lose
// (divided by the number of nodes: the mean reboot time of this world).
func (w *World) FirstReboots() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var total time.Duration
	for i := range w.order {
		total += rebootDraw(w.opts, i, 1)
	}
	return total
}
