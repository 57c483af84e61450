// Package timeline implements the ordered record of what happened to pods
// and endpoints during a rollout: the evidence the diagnosis reads. `lab`
// writes it from its model; `verify` will write it from watches of Pods and
// EndpointSlices.
package timeline

import (
	"sort"
	"sync"
	"time"
)

// Kind is what happened.
type Kind string

// The kinds of event.
const (
	PodCreated   Kind = "pod-created"
	PodStarted   Kind = "pod-started"   // its container is running
	PodListening Kind = "pod-listening" // the app accepts connections
	PodReady     Kind = "pod-ready"
	PodDeleted   Kind = "pod-deleted"
	PodSIGTERM   Kind = "pod-sigterm"
	PodClosed    Kind = "pod-closed" // the app stopped accepting connections
	PodExited    Kind = "pod-exited"
	// EndpointAdded and EndpointRemoved are changes to the Service's
	// endpoints; NodeAdded and NodeRemoved are the moments one client
	// node's proxy applied them.
	EndpointAdded   Kind = "endpoint-added"
	EndpointRemoved Kind = "endpoint-removed"
	NodeAdded       Kind = "node-endpoint-added"
	NodeRemoved     Kind = "node-endpoint-removed"
)

// Event is one thing that happened.
type Event struct {
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`
	Pod  string    `json:"pod"`
	// Node is the client node, for node events; -1 otherwise.
	Node int `json:"node"`
	// PreStop and Readiness describe the pod's spec, on PodCreated.
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
