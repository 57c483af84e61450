// Package timeline implements the ordered record of what happened to pods
// and endpoints during a rollout: the evidence the diagnosis reads. `lab`
// writes it from its model; `verify` writes it from watches of Pods and
// EndpointSlices.
package timeline

import (
	"sort"
	"sync"
	"time"
)

// Kind is what happened.
type Kind string

// The kinds of event, by who can see them. The diagnosis reads only what
// a real cluster's observers give: watches, the listen prober and
// conntrack. The lab's model also records what only it knows (when an app
// really opened or closed its listener, when each node's proxy applied a
// change), for its report and nothing else.
const (
	// Pod watch: the Pod object's changes, stamped when observed.
	PodCreated Kind = "pod-created"
	PodStarted Kind = "pod-started" // its container is running
	PodReady   Kind = "pod-ready"
	PodDeleted Kind = "pod-deleted" // deletion requested
	PodExited  Kind = "pod-exited"  // its container terminated
	// EndpointSlice watch: the Service's endpoints. Added is a ready
	// endpoint; Terminating one that is no longer ready because its pod
	// is terminating (it may still be serving); NotServing a terminating
	// one whose readiness now fails; Removed one that is gone.
	EndpointAdded       Kind = "endpoint-added"
	EndpointTerminating Kind = "endpoint-terminating"
	EndpointNotServing  Kind = "endpoint-not-serving"
	EndpointRemoved     Kind = "endpoint-removed"
	// Listen prober: a pod's address started or stopped accepting
	// connections, seen at At; the change happened after Since, the
	// prober's previous look.
	PodAccepting Kind = "pod-accepting"
	PodRefusing  Kind = "pod-refusing"
	// Conntrack: request Seq from Node was sent to Pod.
	ConnTracked Kind = "conn-tracked"

	// Lab model only: never read by the diagnosis.
	PodListening Kind = "pod-listening" // the app accepts connections
	PodSIGTERM   Kind = "pod-sigterm"
	PodClosed    Kind = "pod-closed" // the app stopped accepting connections
	NodeAdded    Kind = "node-endpoint-added"
	NodeRemoved  Kind = "node-endpoint-removed"
)

// Observed reports whether a real cluster's observers can give this kind
// of event.
func (k Kind) Observed() bool {
	switch k {
	case PodListening, PodSIGTERM, PodClosed, NodeAdded, NodeRemoved:
		return false
	}
	return true
}

// Event is one thing that happened.
type Event struct {
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`
	Pod  string    `json:"pod"`
	// Node is the client node, for node, prober and conntrack events; -1
	// otherwise.
	Node int `json:"node"`
	// Since is, for prober events, the prober's previous look at the pod,
	// which saw the other state: the change happened in (Since, At].
	Since time.Time `json:"since,omitzero"`
	// Seq is the request, for conntrack events.
	Seq int64 `json:"seq,omitempty"`
	// PreStop and Readiness describe the pod's spec, on PodCreated: the
	// preStop delay, and whether a readinessProbe checks the served port.
	PreStop   time.Duration `json:"preStopNs,omitempty"`
	Readiness bool          `json:"readiness,omitempty"`
}

// Timeline collects events from many goroutines.
type Timeline struct {
	mu     sync.Mutex
	events []Event
}

// Add records an event.
func (t *Timeline) Add(e Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

// Events returns the events in time order (in recording order at equal times).
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	out := append([]Event(nil), t.events...)
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}
