// Package diagnose implements the attribution of each failed request to
// its cause: Case 1 (it reached a pod that had stopped listening after its
// deletion, while the client's node still routed to it), Case 2 (it reached
// a pod that was in the endpoints before it listened), or other. It reads
// only what a real cluster also shows: the request's time, client node and
// error class, and the timeline. It never reads which endpoint a request
// went to, so that verify can use it unchanged.
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
	Case1 Cause = "case1"
	Case2 Cause = "case2"
	Other Cause = "other"
)

// Attribution is the diagnosis of one failed request.
type Attribution struct {
	Seq   int64         `json:"seq"`
	At    time.Time     `json:"at"`
	Node  int           `json:"node"`
	Class traffic.Class `json:"class"`
	Cause Cause         `json:"cause"`
	// Pods are the endpoints in the node's view that explain the failure.
	Pods []string `json:"pods,omitempty"`
	// Ambiguous is set when the node's view held pods of both cases; the
	// larger group decides.
	Ambiguous bool `json:"ambiguous,omitempty"`
	// Rule is the rollguard rule whose fix prevents this failure.
	Rule     string `json:"rule,omitempty"`
	Evidence string `json:"evidence"`
}

// Result is the diagnosis of a run.
type Result struct {
	Attributions []Attribution  `json:"attributions"`
	Counts       map[Cause]int  `json:"counts"`
	ByRule       map[string]int `json:"byRule"`
	Ambiguous    int            `json:"ambiguous"`
}

type podState struct {
	name                                        string
	created, listening, deleted, closed, exited time.Time
	preStop                                     time.Duration
	readiness                                   bool
}

// Diagnose attributes each failed record. start is the run's time zero,
// used only to write evidence as offsets.
func Diagnose(events []timeline.Event, failures []traffic.Record, start time.Time) Result {
	events = append([]timeline.Event(nil), events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	pods := map[string]*podState{}
	state := func(name string) *podState {
		if pods[name] == nil {
			pods[name] = &podState{name: name}
		}
		return pods[name]
	}
	perNode := map[int][]timeline.Event{}
	var global []timeline.Event
	for _, e := range events {
		p := state(e.Pod)
		switch e.Kind {
		case timeline.PodCreated:
			p.created, p.preStop, p.readiness = e.At, e.PreStop, e.Readiness
		case timeline.PodListening:
			p.listening = e.At
		case timeline.PodDeleted:
			p.deleted = e.At
		case timeline.PodClosed:
			p.closed = e.At
		case timeline.PodExited:
			p.exited = e.At
		case timeline.NodeAdded, timeline.NodeRemoved:
			perNode[e.Node] = append(perNode[e.Node], e)
		case timeline.EndpointAdded, timeline.EndpointRemoved:
			global = append(global, e)
		}
	}
	res := Result{Counts: map[Cause]int{}, ByRule: map[string]int{}}
	rel := func(t time.Time) string { return fmt.Sprintf("+%.2fs", t.Sub(start).Seconds()) }
	for _, r := range failures {
		// The node's view of the endpoints when the request left: from its
		// own apply events where the timeline has them, else the Service's.
		view := perNode[r.Node]
		added, removed := timeline.NodeAdded, timeline.NodeRemoved
		if len(view) == 0 {
			view, added, removed = global, timeline.EndpointAdded, timeline.EndpointRemoved
		}
		in := map[string]time.Time{}
		for _, e := range view {
			if e.At.After(r.Start) {
				break
			}
			switch e.Kind {
			case added:
				in[e.Pod] = e.At
			case removed:
				delete(in, e.Pod)
			}
		}
		end := FailedAt(r)
		var dead, early []string
		for name := range in {
			p := pods[name]
			closedBy := func(t time.Time) bool {
				return !p.closed.IsZero() && !p.closed.After(t) || !p.exited.IsZero() && !p.exited.After(t)
			}
			switch {
			case !p.deleted.IsZero() && !p.deleted.After(end) && closedBy(end):
				dead = append(dead, name)
			case !closedBy(r.Start) && (p.listening.IsZero() || p.listening.After(r.Start)):
				early = append(early, name)
			}
		}
		sort.Strings(dead)
		sort.Strings(early)
		a := Attribution{Seq: r.Seq, At: r.Start, Node: r.Node, Class: r.Class, Cause: Other}
		switch {
		case len(dead) > 0 && len(dead) >= len(early):
			a.Cause, a.Pods, a.Ambiguous = Case1, dead, len(early) > 0
			p := pods[dead[0]]
			a.Rule = "RG101"
			if p.preStop > 0 {
				a.Rule = "RG102"
			}
			a.Evidence = fmt.Sprintf("node %d still routed to %s: deleted at %s, stopped listening at %s", r.Node,
				strings.Join(dead, ", "), rel(p.deleted), rel(firstSet(p.closed, p.exited)))
		case len(early) > 0:
			a.Cause, a.Pods, a.Ambiguous = Case2, early, len(dead) > 0
			p := pods[early[0]]
			a.Rule = "RG201"
			if p.readiness {
				a.Rule = "RG202"
			}
			listen := "never listened"
			if !p.listening.IsZero() {
				listen = "listened only at " + rel(p.listening)
			}
			a.Evidence = fmt.Sprintf("node %d routed to %s from %s; it %s", r.Node, strings.Join(early, ", "), rel(in[early[0]]), listen)
		case len(in) == 0:
			a.Evidence = fmt.Sprintf("node %d had no endpoints", r.Node)
		default:
			a.Evidence = "every endpoint in the node's view was listening"
		}
		if a.Ambiguous {
			res.Ambiguous++
		}
		res.Counts[a.Cause]++
		if a.Rule != "" {
			res.ByRule[a.Rule]++
		}
		res.Attributions = append(res.Attributions, a)
	}
	return res
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

func firstSet(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
