package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// cluster is the modelled part of a run: pods (each a real HTTP server on
// its own loopback address), the Deployment controller, the kubelet's
// handling of probes and deletion, and one endpoint view per client node
// that applies every change after that node's propagation delay.
type cluster struct {
	sc  Scenario
	tl  *timeline.Timeline
	net network

	mu       sync.Mutex
	err      error // the first setup failure (a pod that could not listen)
	pods     []*pod
	next     int
	rolling  bool
	done     chan struct{} // closed when the rollout has completed
	finished bool
	wg       sync.WaitGroup // background goroutines (servers, probes, kubelet)
	ctx      context.Context
	stop     context.CancelFunc

	nodes []*proxyNode

	// onPod is told each new pod's address (the prober watches it);
	// tracked, when set, each request's endpoint (conntrack).
	onPod   func(name, addr string)
	tracked func(at time.Time, node int, seq int64, pod string)
}

type pod struct {
	name     string
	index    int
	addr     string
	version  int // 0 for the old ReplicaSet, 1 for the new
	ready    bool
	avail    bool
	deleted  bool
	exited   bool
	listener net.Listener
	srv      *http.Server
	// listened and closed are the server's own record of when it
	// accepted connections: the ground truth, which shares nothing with
	// what the observers see.
	listened, closed time.Time
}

// proxyNode is one client node's kube-proxy: its own copy of the endpoints.
type proxyNode struct {
	id    int
	lag   time.Duration
	mu    sync.Mutex
	eps   []*endpoint
	queue chan endpointChange
}

// endpoint is one pod in a node's copy of the EndpointSlice.
type endpoint struct {
	p              *pod
	ready, serving bool
}

// endpointOp is a change to a pod's endpoint, as the EndpointSlice
// controller makes it: added ready; terminating (not ready, still serving);
// no longer serving (its readiness probe fails while it terminates); removed.
type endpointOp int

const (
	opAdd endpointOp = iota
	opTerminate
	opUnserve
	opRemove
)

var opKinds = map[endpointOp]timeline.Kind{opAdd: timeline.EndpointAdded, opTerminate: timeline.EndpointTerminating,
	opUnserve: timeline.EndpointNotServing, opRemove: timeline.EndpointRemoved}

type endpointChange struct {
	p     *pod
	op    endpointOp
	apply time.Time
}

func newCluster(ctx context.Context, sc Scenario, tl *timeline.Timeline, nw network) *cluster {
	ctx, stop := context.WithCancel(ctx)
	c := &cluster{sc: sc, tl: tl, net: nw, done: make(chan struct{}), ctx: ctx, stop: stop}
	for i, lag := range sc.Propagation {
		n := &proxyNode{id: i, lag: lag, queue: make(chan endpointChange, 4096)}
		c.nodes = append(c.nodes, n)
		c.wg.Add(1)
		go c.runProxy(n)
	}
	return c
}

func (c *cluster) event(kind timeline.Kind, p *pod) time.Time {
	now := time.Now()
	e := timeline.Event{At: now, Kind: kind, Pod: p.name, Node: -1}
	if kind == timeline.PodCreated {
		e.PreStop, e.Readiness = c.sc.PreStop, c.sc.Readiness != nil
	}
	c.tl.Add(e)
	return now
}

// runProxy applies endpoint changes in order, each at its apply time.
func (c *cluster) runProxy(n *proxyNode) {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case ch := <-n.queue:
			if d := time.Until(ch.apply); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-c.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			n.mu.Lock()
			n.apply(ch)
			n.mu.Unlock()
			switch ch.op {
			case opAdd:
				c.tl.Add(timeline.Event{At: time.Now(), Kind: timeline.NodeAdded, Pod: ch.p.name, Node: n.id})
			case opRemove:
				c.tl.Add(timeline.Event{At: time.Now(), Kind: timeline.NodeRemoved, Pod: ch.p.name, Node: n.id})
			}
		}
	}
}

// apply changes the node's copy of the endpoints. Called with n.mu held.
func (n *proxyNode) apply(ch endpointChange) {
	for i, e := range n.eps {
		if e.p != ch.p {
			continue
		}
		switch ch.op {
		case opTerminate:
			e.ready = false
		case opUnserve:
			e.serving = false
		case opRemove:
			n.eps = append(n.eps[:i:i], n.eps[i+1:]...)
		}
		return
	}
	if ch.op == opAdd {
		n.eps = append(n.eps, &endpoint{p: ch.p, ready: true, serving: true})
	}
}

// targets is what kube-proxy sends new connections to: the ready
// endpoints, or, when there is none, the serving ones that are
// terminating (its fallback since Kubernetes 1.26). Called with n.mu held.
func (n *proxyNode) targets() []*pod {
	var ready, serving []*pod
	for _, e := range n.eps {
		switch {
		case e.ready:
			ready = append(ready, e.p)
		case e.serving:
			serving = append(serving, e.p)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return serving
}

// errNoEndpoints is what kube-proxy's REJECT rule gives a client when a
// Service has no endpoints: connection refused.
var errNoEndpoints = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

// dial picks an endpoint from the node's current view, as kube-proxy does
// for a new connection, and connects to that pod's own address.
func (c *cluster) dial(ctx context.Context, node int, seq int64) (net.Conn, traffic.Pick, error) {
	n := c.nodes[node]
	n.mu.Lock()
	at := time.Now()
	eps := n.targets()
	if len(eps) == 0 {
		n.mu.Unlock()
		return nil, traffic.Pick{At: at}, errNoEndpoints
	}
	p := eps[pickIndex(c.sc.Seed, seq, len(eps))]
	n.mu.Unlock()
	if c.tracked != nil {
		c.tracked(at, node, seq, p.name)
	}
	conn, err := c.net.dial(ctx, p.addr)
	return conn, traffic.Pick{Endpoint: p.name, At: at}, err
}

// pickIndex spreads requests over endpoints like kube-proxy's random
// choice, but repeatably for a seed.
func pickIndex(seed, seq int64, n int) int {
	x := uint64(seed)*0x9E3779B97F4A7C15 ^ uint64(seq)*0xBF58476D1CE4E5B9
	x ^= x >> 31
	x *= 0x94D049BB133111EB
	x ^= x >> 29
	return int(x % uint64(n))
}

// setEndpoint changes the Service's endpoints and queues the change on
// every node.
func (c *cluster) setEndpoint(p *pod, op endpointOp) {
	now := c.event(opKinds[op], p)
	for _, n := range c.nodes {
		n.queue <- endpointChange{p: p, op: op, apply: now.Add(n.lag)}
	}
}

// newPod creates a pod. Old pods start serving at once, already in every
// node's view; new pods go through start-up.
func (c *cluster) newPod(version int) *pod {
	c.next++
	kind := "old"
	if version == 1 {
		kind = "new"
	}
	p := &pod{name: fmt.Sprintf("web-%s-%d", kind, c.next), index: c.next, addr: c.net.podAddr(c.next), version: version}
	c.pods = append(c.pods, p)
	c.event(timeline.PodCreated, p)
	if c.onPod != nil {
		c.onPod(p.name, p.addr) // a Pod watch shows the address
	}
	if err := c.net.sandbox(p.index, p.addr); err != nil {
		c.fail(fmt.Errorf("pod %s: %w", p.name, err))
	}
	return p
}

// listen starts the pod's server on its address.
func (c *cluster) listen(p *pod) error {
	l, err := c.net.listen(p.index, p.addr)
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.name, err)
	}
	name := p.name
	p.listener = l
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Pod", name)
			fmt.Fprintln(w, name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = p.srv.Serve(l)
	}()
	p.listened = time.Now() // after Listen: a dial refused before now did not reach a listener
	c.event(timeline.PodListening, p)
	return nil
}

// startPod runs a new pod through the kubelet: container start, the app's
// listen delay, readiness, availability.
func (c *cluster) startPod(p *pod) {
	c.after(c.sc.ContainerStart, func() {
		if p.deleted {
			return
		}
		c.event(timeline.PodStarted, p)
		c.after(c.sc.ListenDelay, func() {
			if p.deleted {
				return
			}
			if err := c.listen(p); err != nil {
				c.fail(err)
			}
		})
		if c.sc.Readiness == nil {
			c.markReady(p) // no probe: ready the moment the container runs
			return
		}
		c.probe(p, 0)
	})
}

// probe runs the readiness probe: a real TCP connection to the pod.
func (c *cluster) probe(p *pod, n int) {
	delay := c.sc.Readiness.Period
	if n == 0 {
		delay = c.sc.Readiness.InitialDelay
	}
	c.after(delay, func() {
		if p.deleted || p.ready {
			return
		}
		c.mu.Unlock() // the dial must not hold the lock
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		conn, err := c.net.dial(ctx, p.addr)
		cancel()
		c.mu.Lock()
		if err == nil {
			conn.Close()
			if !p.deleted {
				c.markReady(p)
			}
			return
		}
		c.probe(p, n+1)
	})
}

func (c *cluster) markReady(p *pod) {
	p.ready = true
	c.event(timeline.PodReady, p)
	c.setEndpoint(p, opAdd)
	c.after(c.sc.MinReady, func() {
		if !p.deleted {
			p.avail = true
			c.reconcile()
		}
	})
}

// deletePod is what follows a pod's deletion: its endpoint turns
// terminating at once (not ready, still serving), then preStop, SIGTERM,
// drain and exit, all within the grace period; the endpoint goes with the
// pod.
func (c *cluster) deletePod(p *pod) {
	p.deleted = true
	c.event(timeline.PodDeleted, p)
	if p.ready {
		c.setEndpoint(p, opTerminate)
	}
	preStop := min(c.sc.PreStop, c.sc.Grace)
	c.after(preStop, func() {
		c.event(timeline.PodSIGTERM, p)
		if p.listener == nil {
			c.exit(p)
			return
		}
		p.closed = time.Now() // before Close: a dial refused after now found no listener
		c.event(timeline.PodClosed, p)
		if p.ready && c.sc.Readiness != nil {
			// The kubelet probes a terminating pod too: after the default
			// failureThreshold of 3 failed probes, the endpoint stops serving.
			c.after(3*c.sc.Readiness.Period, func() {
				if !p.exited {
					c.setEndpoint(p, opUnserve)
				}
			})
		}
		drain := min(c.sc.Drain, c.sc.Grace-preStop)
		srv := p.srv
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			_ = srv.Shutdown(ctx) // closes the listener now, waits for requests in flight
			_ = srv.Close()
			c.mu.Lock()
			c.exit(p)
			c.mu.Unlock()
		}()
	})
}

func (c *cluster) exit(p *pod) {
	if p.exited {
		return
	}
	p.exited = true
	if p.closed.IsZero() {
		p.closed = time.Now()
	}
	c.net.gone(p.index)
	c.event(timeline.PodExited, p)
	if p.ready {
		c.setEndpoint(p, opRemove)
	}
	c.reconcile()
}

// reconcile is the Deployment controller's rolling update, with the same
// rounding as the Kubernetes controller (model.Fenceposts): create new
// pods while the total stays within replicas+maxSurge, delete old pods
// while the available ones stay at or above replicas-maxUnavailable.
func (c *cluster) reconcile() {
	if !c.rolling || c.finished {
		return
	}
	replicas := int32(c.sc.Replicas)
	surge, unavail, _, _ := model.Fenceposts(c.sc.MaxSurge, c.sc.MaxUnavailable, replicas)
	var old, cur []*pod
	var availNew int32
	// Like the controller, which syncs again after each change it makes:
	// a deletion can make room for a new pod, in the same moment.
	for changed := true; changed; {
		changed = false
		old, cur, availNew = old[:0], cur[:0], 0
		for _, p := range c.pods {
			if p.deleted {
				continue // terminating pods no longer count
			}
			if p.version == 0 {
				old = append(old, p)
			} else {
				cur = append(cur, p)
				if p.avail {
					availNew++
				}
			}
		}
		if total := int32(len(old) + len(cur)); total < replicas+surge && int32(len(cur)) < replicas {
			c.startPod(c.newPod(1))
			changed = true
			continue
		}
		total := int32(len(old) + len(cur))
		if canDelete := total - (replicas - unavail) - (int32(len(cur)) - availNew); canDelete > 0 && len(old) > 0 {
			c.deletePod(old[0])
			changed = true
		}
	}
	if len(old) == 0 && availNew == replicas {
		allGone := true
		for _, p := range c.pods {
			allGone = allGone && (p.version == 1 || p.exited)
		}
		if allGone {
			c.finished = true
			close(c.done)
		}
	}
}

// after runs f under the cluster lock after d, unless the run has ended.
func (c *cluster) after(d time.Duration, f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-c.ctx.Done():
				return
			case <-t.C:
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ctx.Err() == nil {
			f()
		}
	}()
}

var errSetup = errors.New("lab setup failed")

// fail records a setup failure; the run reports it instead of figures.
// Called with the cluster lock held.
func (c *cluster) fail(err error) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", errSetup, err)
	}
}

// setupErr returns the first setup failure.
func (c *cluster) setupErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// boot starts the old pods, serving and in every node's view.
func (c *cluster) boot() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < c.sc.Replicas; i++ {
		p := c.newPod(0)
		if err := c.listen(p); err != nil {
			return fmt.Errorf("%w: %v", errSetup, err)
		}
		p.ready, p.avail = true, true
		c.event(timeline.PodReady, p)
		c.event(timeline.EndpointAdded, p)
		for _, n := range c.nodes {
			n.eps = append(n.eps, &endpoint{p: p, ready: true, serving: true})
			c.tl.Add(timeline.Event{At: time.Now(), Kind: timeline.NodeAdded, Pod: p.name, Node: n.id})
		}
	}
	return nil
}

func (c *cluster) addrs() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, p := range c.pods {
		out[p.name] = p.addr
	}
	return out
}

// rollout starts the update.
func (c *cluster) rollout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rolling = true
	c.reconcile()
}

// shutdown stops every server and goroutine.
func (c *cluster) shutdown() {
	c.stop()
	c.mu.Lock()
	for _, p := range c.pods {
		if p.srv != nil {
			_ = p.srv.Close()
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.net.close()
}
