// Package lab implements `rollguard lab`: a rolling update reproduced on
// one machine with no cluster. The sockets are real (each pod is an HTTP
// server on its own loopback address, and a request to a pod that does not
// listen gets a real ECONNREFUSED); the cluster around them is modelled: a
// Deployment controller with Kubernetes' rounding, a kubelet that runs
// probes, preStop, SIGTERM and the grace period, and one kube-proxy view
// of the endpoints per client node, each applying changes after its own
// delay. The traffic engine, timeline and diagnosis are the ones verify
// uses; the lab also knows which pod each request reached, and checks the
// diagnosis against that ground truth.
package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// Probe is a readiness probe: a TCP check of the served port.
type Probe struct {
	InitialDelay, Period time.Duration
}

// Scenario is one rollout under traffic.
type Scenario struct {
	Name                     string
	Replicas                 int
	MaxSurge, MaxUnavailable intstr.IntOrString
	MinReady                 time.Duration
	// Propagation is each client node's delay in applying an endpoint change.
	Propagation []time.Duration
	// ContainerStart is from pod creation to a running container;
	// ListenDelay from then until the app accepts connections.
	ContainerStart, ListenDelay time.Duration
	// Drain is how long the app finishes requests in flight after SIGTERM.
	Drain   time.Duration
	PreStop time.Duration
	Grace   time.Duration
	// Readiness is nil for a container without a readinessProbe.
	Readiness *Probe
	// RolloutAfter is when the update starts, after traffic has begun;
	// Tail is how long traffic goes on after the rollout completed.
	RolloutAfter, Tail time.Duration
	// MaxDuration bounds the run if the rollout does not complete.
	MaxDuration time.Duration
	Rate        float64
	Mode        traffic.Mode
	Seed        int64
	// NetNS puts every pod in its own network namespace, so that an exited
	// pod's address really vanishes (Linux, root).
	NetNS bool
}

// Validate refuses scenarios that cannot run or would not be bounded.
func (s *Scenario) Validate() error {
	switch {
	case s.Replicas < 1 || s.Replicas > 50:
		return fmt.Errorf("replicas %d: want 1 to 50", s.Replicas)
	case len(s.Propagation) < 1 || len(s.Propagation) > 20:
		return fmt.Errorf("%d client nodes: want 1 to 20", len(s.Propagation))
	case s.Rate <= 0 || s.Rate > 5000:
		return fmt.Errorf("rate %g: want more than 0 and at most 5000 requests per second", s.Rate)
	case s.MaxDuration <= 0 || s.MaxDuration > 10*time.Minute:
		return fmt.Errorf("duration %s: want more than 0 and at most 10m", s.MaxDuration)
	case s.Grace <= 0:
		return fmt.Errorf("grace period %s: want more than 0", s.Grace)
	}
	for name, d := range map[string]time.Duration{"propagation": minDur(s.Propagation), "container start": s.ContainerStart,
		"listen delay": s.ListenDelay, "drain": s.Drain, "preStop": s.PreStop, "min ready": s.MinReady} {
		if d < 0 {
			return fmt.Errorf("%s %s: must not be negative", name, d)
		}
	}
	if s.Readiness != nil && s.Readiness.Period <= 0 {
		return fmt.Errorf("readiness period %s: want more than 0", s.Readiness.Period)
	}
	if model.IsZero(s.MaxSurge) && model.IsZero(s.MaxUnavailable) {
		return fmt.Errorf("maxSurge and maxUnavailable are both 0: the rollout could never move (the API rejects it)")
	}
	if _, _, _, err := model.Fenceposts(s.MaxSurge, s.MaxUnavailable, int32(s.Replicas)); err != nil {
		return fmt.Errorf("maxSurge/maxUnavailable: %w", err)
	}
	switch s.Mode {
	case traffic.ModeConnect, traffic.ModeHTTP, traffic.ModeKeepAlive:
	default:
		return fmt.Errorf("mode %q: want connect, http or http-keepalive", s.Mode)
	}
	return nil
}

func minDur(ds []time.Duration) time.Duration {
	m := time.Duration(0)
	for i, d := range ds {
		if i == 0 || d < m {
			m = d
		}
	}
	return m
}

// Result is what one scenario measured.
type Result struct {
	Scenario  Scenario
	Start     time.Time
	Summary   *traffic.Summary
	Failures  []traffic.Record
	Timeline  []timeline.Event
	Diagnosis diagnose.Result
	// Truth is each failure's cause from the endpoint it really reached.
	Truth map[int64]diagnose.Cause
	// Agreement is the share of failures the diagnosis attributed as the
	// ground truth did (1 when there were no failures).
	Agreement float64
	// RolloutTook is how long the update ran; zero if it did not complete.
	RolloutTook time.Duration
	// Partial is set when the run was interrupted.
	Partial bool
	// Addrs is each pod's address.
	Addrs map[string]string
}

// Lossless reports whether no request failed.
func (r *Result) Lossless() bool { return r.Summary.Failed() == 0 }

// Run plays one scenario. ipNet picks this run's loopback addresses
// (127.87.ipNet.x), so runs can go on side by side.
func Run(ctx context.Context, sc Scenario, ipNet byte) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var nw network = &loopback{block: ipNet, port: port}
	connectTimeout := 2 * time.Second
	if sc.NetNS {
		if nw, err = newNetNS(port); err != nil {
			return nil, err
		}
		// Longer than ARP's three seconds, so a vanished address shows as
		// "no route to host" and not as a timeout.
		connectTimeout = 4 * time.Second
	}
	tl := &timeline.Timeline{}
	start := time.Now()
	c := newCluster(ctx, sc, tl, nw)
	defer c.shutdown()
	if err := c.boot(); err != nil {
		return nil, err
	}
	sum := traffic.NewSummary()
	var fails traffic.Failures
	stop := make(chan struct{})
	trafficDone := make(chan error, 1)
	go func() {
		trafficDone <- traffic.Run(ctx, traffic.Config{Rate: sc.Rate, Duration: sc.MaxDuration, Nodes: len(sc.Propagation),
			Mode: sc.Mode, Dial: c.dial, ConnectTimeout: connectTimeout, ResponseTimeout: 2 * time.Second, Stop: stop}, sum, &fails)
	}()
	res := &Result{Scenario: sc, Start: start, Summary: sum}
	select {
	case <-time.After(sc.RolloutAfter):
		c.rollout()
	case <-ctx.Done():
	}
	var rolledAt time.Time
	select {
	case <-c.done:
		rolledAt = time.Now()
		select { // keep sending for the tail: the slowest node may still be catching up
		case <-time.After(sc.Tail):
		case <-ctx.Done():
		}
		close(stop) // requests in flight still complete, so none is lost from the count
	case err := <-trafficDone:
		trafficDone <- err // the run reached MaxDuration first
	case <-ctx.Done():
	}
	<-trafficDone
	res.Partial = ctx.Err() != nil
	res.Addrs = c.addrs()
	if !rolledAt.IsZero() {
		res.RolloutTook = rolledAt.Sub(start.Add(sc.RolloutAfter))
	}
	if err := c.setupErr(); err != nil {
		return nil, err
	}
	res.Failures = fails.Records
	res.Timeline = tl.Events()
	res.Diagnosis = diagnose.Diagnose(res.Timeline, res.Failures, start)
	res.Truth = groundTruth(res.Timeline, res.Failures)
	agree := 0
	for _, a := range res.Diagnosis.Attributions {
		if res.Truth[a.Seq] == a.Cause {
			agree++
		}
	}
	res.Agreement = 1
	if n := len(res.Diagnosis.Attributions); n > 0 {
		res.Agreement = float64(agree) / float64(n)
	}
	return res, nil
}

// groundTruth attributes each failure from the pod it really reached: Case
// 1 when that pod had been deleted and had stopped listening, Case 2 when
// it did not listen yet.
func groundTruth(events []timeline.Event, failures []traffic.Record) map[int64]diagnose.Cause {
	type st struct{ listening, deleted, closed time.Time }
	pods := map[string]*st{}
	for _, e := range events {
		p := pods[e.Pod]
		if p == nil {
			p = &st{}
			pods[e.Pod] = p
		}
		switch e.Kind {
		case timeline.PodListening:
			p.listening = e.At
		case timeline.PodDeleted:
			p.deleted = e.At
		case timeline.PodClosed:
			if p.closed.IsZero() {
				p.closed = e.At
			}
		case timeline.PodExited:
			if p.closed.IsZero() {
				p.closed = e.At
			}
		}
	}
	out := map[int64]diagnose.Cause{}
	for _, r := range failures {
		p := pods[r.Endpoint]
		end := diagnose.FailedAt(r)
		switch {
		case p == nil:
			out[r.Seq] = diagnose.Other
		case !p.deleted.IsZero() && !p.deleted.After(end) && !p.closed.IsZero() && !p.closed.After(end):
			out[r.Seq] = diagnose.Case1
		case p.listening.IsZero() || p.listening.After(r.Start):
			out[r.Seq] = diagnose.Case2
		default:
			out[r.Seq] = diagnose.Other
		}
	}
	return out
}

// freePort finds a port free on the loopback; every pod of a run listens on
// it at its own address.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSetup, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Propagation draws per-node delays: a fixed value for every node, a
// uniform range (seeded), or an explicit list.
type Propagation struct {
	Fixed     time.Duration
	Low, High time.Duration
	List      []time.Duration
}

// Delays returns one delay per node.
func (p Propagation) Delays(nodes int, seed int64) []time.Duration {
	if len(p.List) > 0 {
		return p.List
	}
	out := make([]time.Duration, nodes)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	for i := range out {
		if p.High > p.Low {
			out[i] = p.Low + time.Duration(rng.Int64N(int64(p.High-p.Low)))
		} else {
			out[i] = p.Fixed
		}
	}
	return out
}

// RunAll plays scenarios side by side, each on its own addresses, and
// returns the results in order. An interrupted run returns what it
// measured, marked partial.
func RunAll(ctx context.Context, scs []Scenario, parallel int) ([]*Result, error) {
	results := make([]*Result, len(scs))
	errs := make([]error, len(scs))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i := range scs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			results[i], errs[i] = Run(ctx, scs[i], byte(i*4))
		}()
	}
	wg.Wait()
	var done []*Result
	for i, r := range results {
		if errs[i] != nil {
			return nil, fmt.Errorf("scenario %q: %w", scs[i].Name, errs[i])
		}
		if r != nil {
			done = append(done, r)
		}
	}
	if len(done) == 0 && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return done, nil
}
