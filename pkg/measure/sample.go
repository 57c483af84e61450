package measure

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/pkg/agent"
)

// pollEvery is how often measure reads a canary's state while it waits.
const pollEvery = 200 * time.Millisecond

// quiet is how long a node must have sent nothing to a canary before
// measure takes it that the node has stopped routing there. While a node
// routes to it, the canary gets about rate/canaries requests a second
// from that node (the resolution); fifty gaps in a row would be a chance
// of e^-50, and the floor of a second rides out a prober's stall.
func (o *Options) quiet() time.Duration {
	return max(time.Second, 50*o.resolution())
}

// resolution is the mean gap between two requests from one node to one
// canary: a latency is known within about that.
func (o *Options) resolution() time.Duration {
	return time.Duration(float64(o.Canaries) / o.Rate * float64(time.Second))
}

// sample deletes one canary at a time and records, per node, how long
// after its preStop began the node stopped routing to it, and how long
// after its replacement's first readiness answer the node began routing
// to that one.
func (r *run) sample(ctx context.Context) error {
	o := r.opts
	r.rep.Resolution = o.resolution()
	canaries, err := r.waitCanaries(ctx, nil, o.Canaries, o.AgentTimeout)
	if err != nil {
		return err
	}
	// Every canary must hear from every node first: a node that reaches
	// none has nothing to measure.
	for _, c := range canaries {
		if err := r.waitHeard(ctx, c, 30*time.Second); err != nil {
			return err
		}
	}
	r.rep.Warm = true
	// What failed so far failed before any deletion (a node whose
	// kube-proxy was still programming the new Service): counted apart.
	r.warmup = map[string]agent.Progress{}
	for _, a := range r.agents {
		if p, err := a.Client.Progress(ctx); err == nil {
			r.warmup[a.Node] = p
		}
	}
	for i := range o.Samples {
		if o.Jitter > 0 {
			wait := time.Duration(o.Rand.Int64N(int64(o.Jitter)))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		canaries, err := r.waitCanaries(ctx, nil, o.Canaries, o.AgentTimeout)
		if err != nil {
			return err
		}
		victim, witness := canaries[0], canaries[1]
		s := Sample{Pod: victim.name}
		if err := r.cs.CoreV1().Pods(o.Namespace).Delete(ctx, victim.name, metav1.DeleteOptions{}); err != nil {
			return roles.APIError(err, "delete pods", o.Namespace)
		}
		s.Deleted = time.Now()
		if err := r.removal(ctx, victim, witness, &s); err != nil {
			return err
		}
		skip := map[string]bool{}
		for _, c := range canaries {
			skip[c.name] = true
		}
		if err := r.addition(ctx, skip, &s); err != nil {
			return err
		}
		r.rep.Samples = append(r.rep.Samples, s)
		o.progress("sample %d/%d: %s", i+1, o.Samples, s.words(r.nodes))
	}
	return nil
}

// waitHeard waits until a canary has had requests from every node.
func (r *run) waitHeard(ctx context.Context, c *canaryPod, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := r.state(ctx, c)
		if err != nil {
			return err
		}
		var missing []string
		for _, n := range r.nodes {
			if st.Nodes[n].Count == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &InputError{Err: fmt.Errorf("no request from node %s reached canary %s in %s through Service %s (%s): does kube-proxy run there, or does a NetworkPolicy stop it?",
				strings.Join(missing, ", "), c.name, timeout, ServiceName, r.rep.Target)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// removal follows a deleted canary until every node has been quiet
// towards it for quiet() while still sending to the witness (so a
// prober's stall is not taken for the node's change), or the hold is
// over, then releases it.
func (r *run) removal(ctx context.Context, victim, witness *canaryPod, s *Sample) error {
	o := r.opts
	quiet := o.quiet()
	s.Removal = map[string]Latency{}
	defer func() { _ = r.release(context.WithoutCancel(ctx), victim) }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
		st, err := r.state(ctx, victim)
		if err != nil {
			return fmt.Errorf("following the deleted canary: %w", err)
		}
		if !st.PreStop {
			if time.Since(s.Deleted) > o.Hold {
				return fmt.Errorf("canary %s was deleted %s ago and its preStop hook has not been called: is the kubelet on its node working?", victim.name, o.Hold)
			}
			continue
		}
		over := st.SincePreStop >= o.Hold-time.Second
		var wst CanaryState
		if !over {
			if wst, err = r.state(ctx, witness); err != nil {
				return fmt.Errorf("reading the witness canary: %w", err)
			}
		}
		done := true
		for _, n := range r.nodes {
			ns := st.Nodes[n]
			stopped := ns.Idle >= quiet && (over || wst.Nodes[n].Idle < quiet/2)
			if !stopped && !over {
				done = false
				break
			}
		}
		if !done {
			continue
		}
		for _, n := range r.nodes {
			ns := st.Nodes[n]
			l := Latency{Censored: ns.Idle < quiet}
			if ns.Removal != nil {
				l.D = *ns.Removal
			}
			if l.Censored {
				l.D = st.SincePreStop
			}
			s.Removal[n] = l
		}
		return nil
	}
}

// addition waits for the deleted canary's replacement (a ready canary not
// in skip) to hear from every node, or for the hold to be over.
func (r *run) addition(ctx context.Context, skip map[string]bool, s *Sample) error {
	o := r.opts
	fresh, err := r.waitCanaries(ctx, skip, 1, o.AgentTimeout)
	if err != nil {
		return err
	}
	c := fresh[0]
	s.Replacement = c.name
	s.Addition = map[string]Latency{}
	start := time.Now()
	for {
		st, err := r.state(ctx, c)
		if err != nil {
			return fmt.Errorf("following the new canary: %w", err)
		}
		over := time.Since(start) > o.Hold
		all := st.Ready
		for _, n := range r.nodes {
			all = all && st.Nodes[n].Addition != nil
		}
		if all || over {
			for _, n := range r.nodes {
				if a := st.Nodes[n].Addition; a != nil {
					s.Addition[n] = Latency{D: *a}
				} else {
					s.Addition[n] = Latency{D: time.Since(start), Censored: true}
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}
