package measure

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// CanaryPort is the port a canary serves on.
const CanaryPort = 8080

// maxNodes bounds how many node names a canary remembers: a request path
// names its node, and anything that reaches the canary can send one.
const maxNodes = 10_000

// Canary is the server in each canary pod. Everything it records is in
// its own clock, so a latency is a difference of two of its readings and
// no node's clock enters:
//
//	GET  /readyz     the readinessProbe: the first answer is when the pod became ready
//	GET  /m/{node}   one prober request, sent from node through the Service
//	GET  /prestop    the preStop hook: records when it began, then keeps the
//	                 pod serving until /release or the hold is over
//	POST /release    ends the preStop hold: measure has what it needs
//	GET  /state      a CanaryState
type Canary struct {
	now  func() time.Time
	hold time.Duration
	mux  *http.ServeMux

	mu       sync.Mutex
	started  time.Time
	readyAt  time.Time
	preStop  time.Time
	nodes    map[string]*arrivals
	released chan struct{}
	once     sync.Once
}

// arrivals are the prober requests from one node, in the canary's clock.
type arrivals struct {
	first, last  time.Time
	count        int
	afterPreStop int
}

// CanaryState is the body of GET /state. Its durations are differences of
// the canary's monotonic clock, so neither a node's clock nor a step of
// the canary's wall clock enters them.
type CanaryState struct {
	Now     time.Time `json:"now"`
	Started time.Time `json:"started"`
	// Ready and PreStop say whether the first readiness answer and the
	// preStop call have happened.
	Ready   bool `json:"ready"`
	PreStop bool `json:"preStop"`
	// SincePreStop is how long ago the preStop hook began.
	SincePreStop time.Duration        `json:"sincePreStopNs,omitempty"`
	Nodes        map[string]NodeState `json:"nodes"`
}

// NodeState is what a canary saw of one node's prober.
type NodeState struct {
	Count int `json:"count"`
	// AfterPreStop counts the requests that arrived once the preStop hook
	// began.
	AfterPreStop int `json:"afterPreStop"`
	// Idle is the time since the last request.
	Idle time.Duration `json:"idleNs"`
	// Removal is the last request's arrival minus the preStop call (less
	// than 0 when the node stopped sending before the hook began); set
	// once the hook has begun.
	Removal *time.Duration `json:"removalNs,omitempty"`
	// Addition is the first request's arrival minus the first readiness
	// answer; set once the pod has answered one.
	Addition *time.Duration `json:"additionNs,omitempty"`
}

// NewCanary returns a canary whose preStop hook holds the pod for at most
// hold. Its grace period must be longer.
func NewCanary(hold time.Duration) *Canary {
	c := &Canary{now: time.Now, hold: hold, mux: http.NewServeMux(), nodes: map[string]*arrivals{}, released: make(chan struct{})}
	c.started = c.now()
	c.mux.HandleFunc("GET /readyz", c.handleReady)
	c.mux.HandleFunc("GET /m/{node}", c.handleArrival)
	c.mux.HandleFunc("GET /prestop", c.handlePreStop)
	c.mux.HandleFunc("POST /release", c.handleRelease)
	c.mux.HandleFunc("GET /state", c.handleState)
	return c
}

// ServeHTTP serves the canary's API.
func (c *Canary) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

func (c *Canary) handleReady(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	if c.readyAt.IsZero() {
		c.readyAt = c.now()
	}
	c.mu.Unlock()
	fmt.Fprintln(w, "ok")
}

func (c *Canary) handleArrival(w http.ResponseWriter, r *http.Request) {
	at := c.now()
	node := r.PathValue("node")
	c.mu.Lock()
	a := c.nodes[node]
	if a == nil && len(c.nodes) < maxNodes {
		a = &arrivals{first: at}
		c.nodes[node] = a
	}
	if a != nil {
		a.last = at
		a.count++
		if !c.preStop.IsZero() {
			a.afterPreStop++
		}
	}
	c.mu.Unlock()
	fmt.Fprintln(w, "ok")
}

// handlePreStop is the kubelet's preStop call: the pod is being deleted.
// The kubelet waits for the answer (up to the grace period), and sends
// SIGTERM after it, so the canary keeps serving every node that still
// routes to it until measure has seen them all stop.
func (c *Canary) handlePreStop(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.preStop.IsZero() {
		c.preStop = c.now()
	}
	c.mu.Unlock()
	t := time.NewTimer(c.hold)
	defer t.Stop()
	select {
	case <-c.released:
	case <-t.C:
	case <-r.Context().Done():
	}
	fmt.Fprintln(w, "ok")
}

func (c *Canary) handleRelease(w http.ResponseWriter, _ *http.Request) {
	c.once.Do(func() { close(c.released) })
	fmt.Fprintln(w, "released")
}

// State returns what the canary has recorded so far.
func (c *Canary) State() CanaryState {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	s := CanaryState{Now: now, Started: c.started, Ready: !c.readyAt.IsZero(), PreStop: !c.preStop.IsZero(),
		Nodes: make(map[string]NodeState, len(c.nodes))}
	if s.PreStop {
		s.SincePreStop = now.Sub(c.preStop)
	}
	for n, a := range c.nodes {
		ns := NodeState{Count: a.count, AfterPreStop: a.afterPreStop, Idle: now.Sub(a.last)}
		if s.PreStop {
			d := a.last.Sub(c.preStop)
			ns.Removal = &d
		}
		if s.Ready {
			d := a.first.Sub(c.readyAt)
			ns.Addition = &d
		}
		s.Nodes[n] = ns
	}
	return s
}

func (c *Canary) handleState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c.State())
}
