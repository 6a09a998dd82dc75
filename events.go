package crus

import "time"

// EventKind names an Event.
type EventKind string

// Event kinds.
const (
	EventCreated     EventKind = "created"      // session created (pre-flight passed)
	EventStarted     EventKind = "started"      // Run began driving the session
	EventStepStarted EventKind = "step_started" // a new step began
	EventStage       EventKind = "stage"        // the session moved to a new stage
	EventNode        EventKind = "node"         // a node got its outcome
	EventPhase       EventKind = "phase"        // a node in flight moved to a new phase (Phase)
	EventMessage     EventKind = "message"      // a message was added to the record
	EventActionError EventKind = "action_error" // an action failed (per node or as a whole)
	EventObserveErr  EventKind = "observe_error"
	EventCancel      EventKind = "cancel" // deletion requested
	EventDone        EventKind = "done"   // the session finished
)

// Event is a structured notice of something that happened to a session,
// delivered to Config.OnEvent. Fields that do not apply are zero.
type Event struct {
	Time    time.Time
	Session string
	Kind    EventKind
	Step    int
	Steps   int
	Stage   Stage
	Node    string  // xname, for node events
	Outcome Outcome // for node events
	Phase   Phase   // for phase events
	Reason  string
	Message string
	Nodes   int   // nodes concerned (step size, action size)
	Err     error // for error events
}
