package crus

import (
	"fmt"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
)

func wlmBusy(x string) wlm.Node { return wlm.Node{Name: x, State: wlm.StateAllocated} }

// BenchmarkPlanScheduled is BenchmarkPlan's executor path for the
// scheduled strategy: the same session half way through, with every
// candidate in view slotted and the bookings brought in line with the
// slots (none held yet: every one is made).
func BenchmarkPlanScheduled(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		s, obs := benchSession(n)
		s.Rollout = Rollout{Strategy: StrategyScheduled}
		obs.Scheduling, obs.BookingsObserved, obs.Bookings, obs.Horizon = true, true, map[string]Booking{}, 2*time.Minute
		// The scheduled strategy observes its candidates even with no room.
		sc := ScopeFor(s)
		for k, x := range sc.JobEnds {
			if _, ok := obs.Nodes[x]; !ok {
				obs.Nodes[x] = wlmBusy(x)
			}
			obs.JobEnds[x] = obs.Now.Add(time.Duration(k%97) * 7 * time.Minute)
		}
		b.Run(fmt.Sprintf("executor/%dk", n/1000), func(b *testing.B) {
			benchExecutorPlan(b, s, obs, func(d Decision) string {
				if len(actionsOf(d, ActBook)) == 0 {
					return "nothing booked: the decision did not do its work"
				}
				return ""
			})
		})
		// The steady state: every booking wanted is held already, as
		// after the decision before.
		d, err := planWith(s, obs, nil)
		if err != nil {
			b.Fatal(err)
		}
		held := obs
		held.Bookings = map[string]Booking{}
		for _, a := range actionsOf(d, ActBook) {
			held.Bookings[a.Booking.Name] = Booking{Name: a.Booking.Name, Nodes: a.Nodes, Start: a.Booking.Start, End: a.Booking.End}
		}
		b.Run(fmt.Sprintf("executor/%dk/held", n/1000), func(b *testing.B) {
			benchExecutorPlan(b, s, held, func(d Decision) string {
				if len(actionsOf(d, ActBook))+len(actionsOf(d, ActUnbook)) > 0 {
					return "bookings changed: they were not as wanted"
				}
				return ""
			})
		})
	}
}
