// Package observe implements the observers that see a rollout from inside
// a cluster, as verify runs them in its agents and the lab runs them against
// its own pods: a listen prober that dials each pod's own address, and the
// record of which endpoint each connection was sent to (conntrack). Their
// events are the only evidence, besides Pod and EndpointSlice watches, that
// the diagnosis reads.
package observe

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rollguard/rollguard/pkg/timeline"
)

// Prober dials every target pod's address at a fixed period and reports
// when a pod starts and stops accepting connections. Only a refusal or no
// route counts as not accepting; a dial that times out counts as nothing. A pod's address is
// reachable from any pod of a cluster, so an agent can do this without any
// privilege. What it sees is exact up to its period: a change it reports at
// At happened after its previous look (Event.Since).
type Prober struct {
	// Period is the time between two looks at a pod; Timeout bounds one
	// dial (an address that has vanished answers nothing).
	Period, Timeout time.Duration
	// Node is the agent's node, written on the events.
	Node int
	// Dial connects to an address ("host:port").
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Emit receives each change.
	Emit func(timeline.Event)

	mu      sync.Mutex
	targets map[string]*target
}

type target struct {
	addr      string
	seen      bool // looked at least once
	accepting bool
	last      time.Time // the previous look
}

// Watch adds a pod to probe, from the moment its address is known (a Pod
// watch shows it once the pod has an IP).
func (p *Prober) Watch(pod, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.targets == nil {
		p.targets = map[string]*target{}
	}
	if _, ok := p.targets[pod]; !ok {
		p.targets[pod] = &target{addr: addr}
	}
}

// Forget stops probing a pod (its object is gone).
func (p *Prober) Forget(pod string) {
	p.mu.Lock()
	delete(p.targets, pod)
	p.mu.Unlock()
}

// Run probes until ctx ends. Each round dials every target at once, so a
// round takes at most Timeout, and rounds start Period apart.
func (p *Prober) Run(ctx context.Context) {
	tick := time.NewTicker(p.Period)
	defer tick.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Prober) round(ctx context.Context) {
	p.mu.Lock()
	names := make([]string, 0, len(p.targets))
	for name := range p.targets {
		names = append(names, name)
	}
	p.mu.Unlock()
	sort.Strings(names)
	var wg sync.WaitGroup
	for _, name := range names {
		p.mu.Lock()
		t := p.targets[name]
		p.mu.Unlock()
		if t == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.look(ctx, name, t)
		}()
	}
	wg.Wait()
}

// look dials one target once and emits an event when its state changed.
func (p *Prober) look(ctx context.Context, name string, t *target) {
	dctx, cancel := context.WithTimeout(ctx, p.Timeout)
	conn, err := p.Dial(dctx, t.addr)
	cancel()
	if ctx.Err() != nil {
		return // the run ended: this look saw nothing
	}
	now := time.Now()
	accepting := err == nil
	if conn != nil {
		conn.Close()
	}
	if err != nil && !refused(err) {
		// A timeout says nothing certain: the address may be gone, or the
		// pod (or this machine) too busy to answer in time. The Pod watch
		// tells when a container has terminated.
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.seen || accepting != t.accepting {
		kind := timeline.PodRefusing
		if accepting {
			kind = timeline.PodAccepting
		}
		p.Emit(timeline.Event{At: now, Kind: kind, Pod: name, Node: p.Node, Since: t.last})
	}
	t.seen, t.accepting, t.last = true, accepting, now
}

// refused reports whether a dial error proves that nothing accepts at the
// address: a refusal, or no route to it.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}
