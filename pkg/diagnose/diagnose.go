// Package diagnose implements the attribution of each failed request to
// its cause: Case 1 (it was sent to a pod that had been deleted and had
// stopped accepting connections, while the client's node still routed to
// it), Case 2 (it was sent to a pod that was in the endpoints before it
// accepted connections), or other.
//
// It reads only what a real cluster's observers give (timeline kinds for
// which Kind.Observed is true): Pod and EndpointSlice watches, a listen
// prober's looks at each pod's address, and, when an agent may read
// conntrack, the endpoint each request was sent to. When nothing shows when
// a node's kube-proxy applied an endpoint change, a propagation window (the
// budget) stands in for it. Each attribution says which signals decided it
// and how sure it is; a failure that two causes explain equally is reported
// as ambiguous, never given to one of them.
package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// Cause is what a failure is attributed to.
type Cause string

// The causes.
const (
	Case1     Cause = "case1"
	Case2     Cause = "case2"
	Ambiguous Cause = "ambiguous" // more than one explanation fits
	Other     Cause = "other"
)

// Certainty says how an attribution was reached.
type Certainty string

// The certainties.
const (
	// Exact: conntrack named the pod the request was sent to.
	Exact Certainty = "exact"
	// Inferred: only pods of one cause could have received the request.
	Inferred Certainty = "inferred"
	// Unexplained: no pod that could have received it was down.
	Unexplained Certainty = "unexplained"
)

// Options are what the diagnosis needs besides the events.
type Options struct {
	// Budget is how long a node may take to apply an endpoint change:
	// measured by `rollguard measure`, or configured. A node may still
	// send to a removed endpoint, and may not yet send to an added one,
	// until that long after the change was observed.
	Budget time.Duration
	// ProbePeriod is how often the listen prober looks at each pod. It
	// reports only changes, so a pod it last saw accepting was still
	// accepting at its latest look, at most about a period ago.
	ProbePeriod time.Duration
	// Rule names the rollguard rule whose fix prevents a cause on a pod,
	// from what its spec has (the rules registry decides, not this
	// package); nil leaves rules out.
	Rule func(cause Cause, pod PodSpec) string
	// Start is the run's time zero, used only to write evidence as offsets.
	Start time.Time
	// NodeName names a client node in evidence; "node N" when nil.
	NodeName func(int) string
}

// PodSpec is what a Pod watch shows of a pod's spec that bears on the
// two cases.
type PodSpec struct {
	Name string
	// PreStop is the preStop delay; Readiness is true when a
	// readinessProbe checks the served port.
	PreStop   time.Duration
	Readiness bool
}

// Attribution is the diagnosis of one failed request.
type Attribution struct {
	Seq       int64         `json:"seq"`
	At        time.Time     `json:"at"`
	Node      int           `json:"node"`
	Class     traffic.Class `json:"class"`
	Cause     Cause         `json:"cause"`
	Certainty Certainty     `json:"certainty"`
	// Pods are the pods that explain the failure; for an ambiguous one,
	// Case1Pods and Case2Pods are the two explanations.
	Pods      []string `json:"pods,omitempty"`
	Case1Pods []string `json:"case1Pods,omitempty"`
	Case2Pods []string `json:"case2Pods,omitempty"`
	// Rule is the rollguard rule whose fix prevents this failure.
	Rule string `json:"rule,omitempty"`
	// Signals lists the observers whose events decided it.
	Signals  []string `json:"signals"`
	Evidence string   `json:"evidence"`
}

// Result is the diagnosis of a run.
type Result struct {
	Attributions []Attribution     `json:"attributions"`
	Counts       map[Cause]int     `json:"counts"`
	ByCertainty  map[Certainty]int `json:"byCertainty"`
	ByRule       map[string]int    `json:"byRule"`
	// Signals are the observers whose events were given.
	Signals map[string]bool `json:"signals"`
}

// pod is what the observers showed of one pod.
type pod struct {
	spec PodSpec
	// deleted: deletion observed; ready: first ready endpoint observed;
	// exited: its container's termination observed; unserved: its endpoint
	// seen no longer serving, or removed.
	deleted, ready, exited, unserved time.Time
	// looks are the prober's changes, in time order.
	looks []timeline.Event
}

// possibly says whether the prober's looks allow that the pod was
// accepting, and refusing, at t. A look reports a change that happened
// after the previous look (Since): between the two, both states are
// possible; before the first look nothing is known.
func (p *pod) possibly(t time.Time) (accepting, refusing bool) {
	var prev, next *timeline.Event
	for i := range p.looks {
		if p.looks[i].At.After(t) {
			next = &p.looks[i]
			break
		}
		prev = &p.looks[i]
	}
	switch {
	case prev == nil:
		return true, true
	case next == nil || !t.After(next.Since):
		return prev.Kind == timeline.PodAccepting, prev.Kind == timeline.PodRefusing
	default:
		return true, true
	}
}

// exitLook counts the watch's news that the pod's container terminated as
// a look that saw it refusing: its address may stop answering at all (the
// prober counts a timeout as nothing), so the exit is the first sure sign.
func (p *pod) exitLook(period time.Duration) {
	if p.exited.IsZero() {
		return
	}
	exit := timeline.Event{At: p.exited, Kind: timeline.PodRefusing, Pod: p.spec.Name}
	i := 0
	for i < len(p.looks) && !p.looks[i].At.After(p.exited) {
		exit.Since = p.looks[i].At
		i++
	}
	// The prober looked at least every period (two, for a look lost to a
	// timeout) and would have reported a refusal while the address still
	// answered: the change came after its last look before the exit.
	if latest := p.exited.Add(-2 * period); latest.After(exit.Since) {
		exit.Since = latest
	}
	if i > 0 && p.looks[i-1].Kind == timeline.PodRefusing {
		return // the prober saw it refusing already
	}
	p.looks = append(p.looks[:i], append([]timeline.Event{exit}, p.looks[i:]...)...)
}

// readyCount follows how many of the Service's endpoints the watch showed
// ready, over time.
type readyCount struct {
	in      map[string]bool
	changes []readyAt
}

type readyAt struct {
	at time.Time
	n  int
}

func (c *readyCount) change(at time.Time, pod string, ready bool) {
	if c.in[pod] == ready {
		return
	}
	c.in[pod] = ready
	n := 0
	if len(c.changes) > 0 {
		n = c.changes[len(c.changes)-1].n
	}
	if ready {
		n++
	} else {
		n--
	}
	c.changes = append(c.changes, readyAt{at, n})
}

// fallback reports whether a node may have sent a request at t to a
// deleted pod through kube-proxy's fallback to serving terminating
// endpoints: at some moment in the budget before t (a node may apply a
// change that late), after the deletion and while the pod still served, the
// watch showed no ready endpoint at all.
func (c *readyCount) fallback(p *pod, t time.Time, budget time.Duration) bool {
	from, to := t.Add(-budget), t
	if p.deleted.After(from) {
		from = p.deleted
	}
	if !p.unserved.IsZero() && p.unserved.Before(to) {
		to = p.unserved
	}
	if to.Before(from) {
		return false
	}
	n := -1
	for _, ch := range c.changes {
		if ch.at.After(to) {
			break
		}
		if ch.at.After(from) && ch.n == 0 {
			return true
		}
		n = ch.n
	}
	return n == 0
}

// zeroAt reports whether the watch showed no ready endpoint at t.
func (c *readyCount) zeroAt(t time.Time) bool {
	n := 0
	for _, ch := range c.changes {
		if ch.at.After(t) {
			break
		}
		n = ch.n
	}
	return n == 0
}

// Diagnose attributes each failed request.
func Diagnose(events []timeline.Event, failures []traffic.Record, opts Options) Result {
	res := Result{Counts: map[Cause]int{}, ByCertainty: map[Certainty]int{}, ByRule: map[string]int{}, Signals: map[string]bool{}}
	events = append([]timeline.Event(nil), events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	pods := map[string]*pod{}
	get := func(name string) *pod {
		if pods[name] == nil {
			pods[name] = &pod{spec: PodSpec{Name: name}}
		}
		return pods[name]
	}
	tracked := map[int64]timeline.Event{}
	ready := &readyCount{in: map[string]bool{}}
	for _, e := range events {
		if !e.Kind.Observed() {
			continue // the lab's model knows more than any cluster shows
		}
		p := get(e.Pod)
		switch e.Kind {
		case timeline.PodCreated:
			p.spec.PreStop, p.spec.Readiness = e.PreStop, e.Readiness
			res.Signals["watch"] = true
		case timeline.PodDeleted:
			if p.deleted.IsZero() {
				p.deleted = e.At
			}
		case timeline.PodExited:
			if p.exited.IsZero() {
				p.exited = e.At
			}
		case timeline.EndpointAdded:
			if p.ready.IsZero() {
				p.ready = e.At
			}
			ready.change(e.At, e.Pod, true)
			res.Signals["watch"] = true
		case timeline.EndpointTerminating:
			ready.change(e.At, e.Pod, false)
		case timeline.EndpointNotServing, timeline.EndpointRemoved:
			ready.change(e.At, e.Pod, false)
			if p.unserved.IsZero() {
				p.unserved = e.At
			}
		case timeline.PodAccepting, timeline.PodRefusing:
			p.looks = append(p.looks, e)
			res.Signals["prober"] = true
		case timeline.ConnTracked:
			tracked[e.Seq] = e
			res.Signals["conntrack"] = true
		}
	}
	names := make([]string, 0, len(pods))
	for n, p := range pods {
		names = append(names, n)
		p.exitLook(opts.ProbePeriod)
	}
	sort.Strings(names)
	rel := func(t time.Time) string { return fmt.Sprintf("+%.2fs", t.Sub(opts.Start).Seconds()) }
	nodeName := func(n int) string {
		if opts.NodeName != nil {
			return "node " + opts.NodeName(n)
		}
		return fmt.Sprintf("node %d", n)
	}

	for _, r := range failures {
		a := Attribution{Seq: r.Seq, At: r.Start, Node: r.Node, Class: r.Class, Cause: Other, Certainty: Unexplained}
		end := FailedAt(r)
		tr, ok := tracked[r.Seq]
		switch {
		case !ok && res.Signals["conntrack"]:
			// Conntrack saw the connection translated to no pod: kube-proxy
			// rejected it, as it does when the Service has no endpoint.
			a.Certainty, a.Signals = Exact, []string{"conntrack"}
			a.Evidence = "conntrack shows it was sent to no pod: the node had no endpoint for the Service"
		case ok:
			p := get(tr.Pod)
			a.Certainty, a.Pods, a.Signals = Exact, []string{tr.Pod}, []string{"conntrack", "watch", "prober"}
			switch {
			case gone(p, r.Start, end):
				a.Cause = Case1
				a.Evidence = fmt.Sprintf("sent to %s (conntrack), deleted at %s and no longer accepting", tr.Pod, rel(p.deleted))
			case early(p, r.Start):
				a.Cause = Case2
				a.Evidence = fmt.Sprintf("sent to %s (conntrack), not yet accepting; in the endpoints since %s", tr.Pod, rel(p.ready))
			default:
				a.Evidence = fmt.Sprintf("sent to %s (conntrack), which was accepting connections", tr.Pod)
			}
		default:
			var dead, new []string
			for _, name := range names {
				p := pods[name]
				// Case 1: deleted, maybe still in this node's rules, and
				// maybe no longer accepting when the request failed.
				// Past the budget, a node may still route to it through
				// kube-proxy's fallback: while no endpoint was ready and
				// this one still served.
				inRules := !r.Start.After(p.deleted.Add(opts.Budget)) || ready.fallback(p, r.Start, opts.Budget)
				if !p.deleted.IsZero() && !p.deleted.After(end) && inRules && gone(p, r.Start, end) {
					dead = append(dead, name)
					continue
				}
				// Case 2: in the endpoints, maybe already in this node's
				// rules, and maybe not yet accepting when the request left.
				if !p.ready.IsZero() && !p.ready.After(r.Start) && early(p, r.Start) {
					new = append(new, name)
				}
			}
			a.Signals = []string{"watch", "prober", "budget"}
			// Once every deleted candidate's endpoint was gone and nothing
			// was ready, the node may as well have had no endpoint at all:
			// a refusal then is the gap itself, not Case 1.
			empty := len(dead) > 0 && ready.zeroAt(r.Start)
			for _, name := range dead {
				if u := pods[name].unserved; u.IsZero() || u.After(r.Start) {
					empty = false
				}
			}
			switch {
			case empty && len(new) == 0:
				a.Cause, a.Certainty, a.Case1Pods = Ambiguous, Inferred, dead
				a.Evidence = fmt.Sprintf("%s may still have routed to %s (deleted, no longer serving, not accepting), or had no endpoint at all",
					nodeName(r.Node), strings.Join(dead, ", "))
			case len(dead) > 0 && len(new) > 0:
				a.Cause, a.Certainty, a.Case1Pods, a.Case2Pods = Ambiguous, Inferred, dead, new
				a.Evidence = fmt.Sprintf("%s may still have routed to %s (deleted, not accepting) or already to %s (not yet accepting)",
					nodeName(r.Node), strings.Join(dead, ", "), strings.Join(new, ", "))
			case len(dead) > 0:
				p := pods[dead[0]]
				a.Cause, a.Certainty, a.Pods = Case1, Inferred, dead
				a.Evidence = fmt.Sprintf("%s may still have routed to %s: deleted at %s, not accepting (within the %s budget, or by kube-proxy's fallback while no endpoint was ready)",
					nodeName(r.Node), strings.Join(dead, ", "), rel(p.deleted), opts.Budget)
			case len(new) > 0:
				p := pods[new[0]]
				a.Cause, a.Certainty, a.Pods = Case2, Inferred, new
				a.Evidence = fmt.Sprintf("%s may have routed to %s: in the endpoints since %s, not yet accepting",
					nodeName(r.Node), strings.Join(new, ", "), rel(p.ready))
			default:
				a.Evidence = "no pod the node could have routed to was down"
			}
		}
		if opts.Rule != nil && (a.Cause == Case1 || a.Cause == Case2) {
			a.Rule = opts.Rule(a.Cause, get(a.Pods[0]).spec)
		}
		res.Counts[a.Cause]++
		res.ByCertainty[a.Certainty]++
		if a.Rule != "" {
			res.ByRule[a.Rule]++
		}
		res.Attributions = append(res.Attributions, a)
	}
	return res
}

// gone: the pod was deleted by the time the request failed, and the
// prober allows that it no longer accepted connections then. A pod whose
// deletion came after the failure is not a Case 1 pod.
func gone(p *pod, start, end time.Time) bool {
	if p.deleted.IsZero() || p.deleted.After(end) {
		return false
	}
	if !p.exited.IsZero() && !p.exited.After(end) {
		return true // its container had terminated
	}
	_, refusing := p.possibly(end)
	return refusing
}

// early: the pod was not deleted when the request left, and the prober
// allows that it was not accepting yet: it has not been seen accepting
// before. The guard on deletion keeps a pod that had already closed for
// good out of Case 2.
func early(p *pod, start time.Time) bool {
	if !p.deleted.IsZero() && !p.deleted.After(start) {
		return false
	}
	if p.spec.Readiness {
		return false // readiness on the served port passed: it was accepting
	}
	for _, l := range p.looks {
		if l.Kind == timeline.PodAccepting && !l.At.After(start) {
			return false // seen accepting before the request
		}
	}
	_, refusing := p.possibly(start)
	return refusing
}

// FailedAt is when a request failed: at its start for a refused or
// unanswered connection, at its end for one cut while in flight (a reset,
// or a close before the response), since the pod may have stopped
// listening after the connection was made.
func FailedAt(r traffic.Record) time.Time {
	switch r.Class {
	case traffic.Reset, traffic.EOF, traffic.ResponseTimeout:
		return r.Intended.Add(r.Latency)
	}
	return r.Start
}
