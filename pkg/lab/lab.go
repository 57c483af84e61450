// Package lab implements `rollguard lab`: a rolling update reproduced on
// one machine with no cluster. The sockets are real (each pod is an HTTP
// server on its own loopback address, or its own port of 127.0.0.1 where
// that is the only loopback address, and a request to a pod that does not
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
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/observe"
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
	// Addressing is how pods get endpoints of their own on loopback,
	// without NetNS; the zero value picks what this system supports.
	Addressing Addressing
	// Conntrack adds the observer that names each request's endpoint, as
	// verify's agents do with --privileged-agents; without it the
	// diagnosis has what an unprivileged verify has: watches and a listen
	// prober looking at every pod each ProbePeriod.
	Conntrack   bool
	ProbePeriod time.Duration
	// Budget is the propagation window the diagnosis assumes, standing in
	// for what `rollguard measure` gives on a cluster; zero means the
	// slowest node's delay plus one probe period.
	Budget time.Duration
}

// Observers names the observer set the diagnosis was given.
func (s *Scenario) Observers() string {
	if s.Conntrack {
		return "watches, listen prober, conntrack"
	}
	return "watches, listen prober (unprivileged)"
}

// budget is the propagation window the diagnosis is given.
func (s *Scenario) budget() time.Duration {
	if s.Budget > 0 {
		return s.Budget
	}
	slowest := time.Duration(0)
	for _, d := range s.Propagation {
		slowest = max(slowest, d)
	}
	return slowest + s.probePeriod()
}

func (s *Scenario) probePeriod() time.Duration {
	if s.ProbePeriod > 0 {
		return s.ProbePeriod
	}
	return 100 * time.Millisecond
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
	case s.ProbePeriod < 0 || s.ProbePeriod > 0 && s.ProbePeriod < 10*time.Millisecond:
		return fmt.Errorf("probe period %s: want at least 10ms", s.ProbePeriod)
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
	// Agreement is the share of the failures the diagnosis attributed to
	// one cause that it attributed as the ground truth did (1 when there
	// were none); AmbiguousShare the share of all failures it reported as
	// ambiguous.
	Agreement, AmbiguousShare float64
	// RolloutTook is how long the update ran; zero if it did not complete.
	RolloutTook time.Duration
	// Partial is set when the run was interrupted.
	Partial bool
	// Addrs is each pod's address.
	Addrs map[string]string

	conntrack []timeline.Event // every request's endpoint, for Diagnose
}

// Lossless reports whether no request failed.
func (r *Result) Lossless() bool { return r.Summary.Failed() == 0 }

// Run plays one scenario. ipNet picks this run's loopback addresses
// (127.87.ipNet.x) when each pod has its own, so runs can go on side by
// side.
func Run(ctx context.Context, sc Scenario, ipNet byte) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	var nw network
	connectTimeout := 2 * time.Second
	if sc.NetNS {
		n, err := newNetNS()
		if err != nil {
			return nil, err
		}
		nw = n
		// Longer than ARP's three seconds, so a vanished address shows as
		// "no route to host" and not as a timeout.
		connectTimeout = 4 * time.Second
	} else {
		l, err := newLoopback(sc.Addressing, ipNet)
		if err != nil {
			return nil, err
		}
		nw = l
	}
	tl := &timeline.Timeline{}
	start := time.Now()
	c := newCluster(ctx, sc, tl, nw)
	defer c.shutdown()
	// The observers, run against the pods as verify's agents run them.
	prober := &observe.Prober{Period: sc.probePeriod(), Timeout: min(sc.probePeriod(), 100*time.Millisecond),
		Dial: nw.dial, Emit: tl.Add}
	c.onPod = prober.Watch
	// Conntrack is always recorded, so that one run can be diagnosed
	// with either observer set; the diagnosis reads it only with
	// sc.Conntrack.
	var ct observe.Conntrack
	c.tracked = ct.Track
	if err := c.boot(); err != nil {
		return nil, err
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() { prober.Run(probeCtx); close(probeDone) }()
	defer func() { stopProbe(); <-probeDone }()
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
	stopProbe()
	<-probeDone
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
	res.conntrack = ct.Events()
	res.Truth = groundTruth(c.records(), res.Failures)
	res.Diagnosis, res.Agreement, res.AmbiguousShare = res.Diagnose(sc.Conntrack)
	return res, nil
}

// Diagnose runs the diagnosis over this run's observers, with conntrack's
// events or without them, and compares it with the ground truth.
func (r *Result) Diagnose(conntrack bool) (d diagnose.Result, agree, ambiguous float64) {
	signals := r.Timeline
	if conntrack {
		signals = append(append([]timeline.Event(nil), signals...), r.conntrack...)
	}
	d = diagnose.Diagnose(signals, r.Failures, diagnose.Options{Budget: r.Scenario.budget(),
		ProbePeriod: r.Scenario.probePeriod(), Rule: ruleFor(r.Scenario), Start: r.Start})
	agree, ambiguous = agreement(d, r.Truth)
	return d, agree, ambiguous
}

// agreement compares the diagnosis with the ground truth: the share of the
// failures it attributed to one cause that it got right, and the share it
// reported as ambiguous.
func agreement(d diagnose.Result, truth map[int64]diagnose.Cause) (agree, ambiguous float64) {
	decided, right, amb := 0, 0, 0
	for _, a := range d.Attributions {
		if a.Cause == diagnose.Ambiguous {
			amb++
			continue
		}
		decided++
		if truth[a.Seq] == a.Cause {
			right++
		}
	}
	agree = 1
	if decided > 0 {
		agree = float64(right) / float64(decided)
	}
	if n := len(d.Attributions); n > 0 {
		ambiguous = float64(amb) / float64(n)
	}
	return agree, ambiguous
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
