package diagnose_test

import (
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ev(s float64, kind timeline.Kind, pod string) timeline.Event {
	return timeline.Event{At: at(s), Kind: kind, Pod: pod, Node: -1}
}

// look is a prober event: the change happened in (since, s].
func look(s, since float64, kind timeline.Kind, pod string) timeline.Event {
	e := timeline.Event{At: at(s), Kind: kind, Pod: pod, Node: 0}
	if since >= 0 {
		e.Since = at(since)
	}
	return e
}

// step is one rolling step as a cluster's observers see it, with a
// prober looking every 0.1s: old is deleted at 2s and stops accepting at
// once; new is ready at 2s (no readinessProbe) and accepts from 4s.
var step = []timeline.Event{
	{At: at(0), Kind: timeline.PodCreated, Pod: "old", Node: -1},
	ev(0, timeline.EndpointAdded, "old"),
	look(0.05, -1, timeline.PodAccepting, "old"),
	{At: at(1), Kind: timeline.PodCreated, Pod: "new", Node: -1},
	look(1.05, -1, timeline.PodRefusing, "new"),
	ev(2, timeline.PodDeleted, "old"),
	ev(2, timeline.EndpointTerminating, "old"),
	ev(2, timeline.EndpointAdded, "new"),
	look(2.05, 1.95, timeline.PodRefusing, "old"),
	look(4.05, 3.95, timeline.PodAccepting, "new"),
}

func rec(seq int64, start float64, class traffic.Class) traffic.Record {
	return traffic.Record{Seq: seq, Node: 0, Intended: at(start), Start: at(start), Class: class}
}

func opts(budget float64) diagnose.Options {
	return diagnose.Options{Budget: time.Duration(budget * float64(time.Second)), Start: t0,
		Rule: func(c diagnose.Cause, p diagnose.PodSpec) string { return string(c) + ":" + p.Name }}
}

func TestDiagnose(t *testing.T) {
	t.Parallel()
	reset := rec(5, 1.9, traffic.Reset)
	reset.Latency = 1100 * time.Millisecond // cut at 3.0s, old closed, past new's readiness
	for _, tc := range []struct {
		name      string
		r         traffic.Record
		budget    float64
		cause     diagnose.Cause
		certainty diagnose.Certainty
		rule      string
	}{
		{"within the budget after old's deletion, new not yet accepting: both explain it", rec(1, 2.5, traffic.Refused), 1, diagnose.Ambiguous, diagnose.Inferred, ""},
		{"past the budget: only new explains it", rec(2, 3.5, traffic.Refused), 1, diagnose.Case2, diagnose.Inferred, "case2:new"},
		{"before the rollout: nothing explains it", rec(3, 1.0, traffic.Refused), 1, diagnose.Other, diagnose.Unexplained, ""},
		{"after new accepts, past the budget: nothing", rec(4, 4.5, traffic.Refused), 1, diagnose.Other, diagnose.Unexplained, ""},
		{"a reset made before new was ready, cut after old closed", reset, 2, diagnose.Case1, diagnose.Inferred, "case1:old"},
	} {
		res := diagnose.Diagnose(step, []traffic.Record{tc.r}, opts(tc.budget))
		a := res.Attributions[0]
		if a.Cause != tc.cause || a.Certainty != tc.certainty || a.Rule != tc.rule || a.Evidence == "" {
			t.Errorf("%s: got %s %s rule %q (%s)", tc.name, a.Cause, a.Certainty, a.Rule, a.Evidence)
		}
		if a.Cause == diagnose.Ambiguous && (len(a.Case1Pods) != 1 || len(a.Case2Pods) != 1) {
			t.Errorf("%s: an ambiguous failure names both explanations, got %v and %v", tc.name, a.Case1Pods, a.Case2Pods)
		}
	}
}

// TestCase1Only: a step where new has a readinessProbe (ready means it was
// accepting) leaves only old to explain a failure after the deletion.
func TestCase1Only(t *testing.T) {
	t.Parallel()
	events := append([]timeline.Event(nil), step...)
	events[3].Readiness = true
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 2.5, traffic.Refused), rec(2, 3.5, traffic.Refused)}, opts(1))
	if a := res.Attributions[0]; a.Cause != diagnose.Case1 || a.Rule != "case1:old" {
		t.Errorf("within the budget: got %s %q (%s)", a.Cause, a.Rule, a.Evidence)
	}
	if a := res.Attributions[1]; a.Cause != diagnose.Other {
		t.Errorf("past the budget: got %s (%s)", a.Cause, a.Evidence)
	}
}

// TestConntrackIsExact: conntrack names the pod, so the same request that
// was ambiguous is attributed exactly, either way.
func TestConntrackIsExact(t *testing.T) {
	t.Parallel()
	events := append([]timeline.Event(nil), step...)
	events = append(events,
		timeline.Event{At: at(2.5), Kind: timeline.ConnTracked, Pod: "old", Node: 0, Seq: 1},
		timeline.Event{At: at(2.6), Kind: timeline.ConnTracked, Pod: "new", Node: 0, Seq: 2},
		timeline.Event{At: at(4.5), Kind: timeline.ConnTracked, Pod: "new", Node: 0, Seq: 3})
	// Request 4 conntrack saw sent to no pod: the node had no endpoint.
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 2.5, traffic.Refused), rec(2, 2.6, traffic.Refused), rec(3, 4.5, traffic.Refused),
		rec(4, 2.5, traffic.Refused)}, opts(1))
	want := []diagnose.Cause{diagnose.Case1, diagnose.Case2, diagnose.Other, diagnose.Other}
	for i, a := range res.Attributions {
		if a.Cause != want[i] || a.Certainty != diagnose.Exact {
			t.Errorf("request %d: %s %s, want %s exact (%s)", a.Seq, a.Cause, a.Certainty, want[i], a.Evidence)
		}
	}
	if !res.Signals["conntrack"] || res.ByCertainty[diagnose.Exact] != 4 {
		t.Errorf("signals %v, certainties %v", res.Signals, res.ByCertainty)
	}
}

// TestDeletedPodIsNotEarly: a pod deleted before it ever accepted, and past
// the budget, explains nothing; without the guard on deletion it would be
// taken for a pod that joined the endpoints early.
func TestDeletedPodIsNotEarly(t *testing.T) {
	t.Parallel()
	events := []timeline.Event{
		{At: at(0), Kind: timeline.PodCreated, Pod: "broken", Node: -1},
		look(0.05, -1, timeline.PodRefusing, "broken"),
		ev(1, timeline.EndpointAdded, "broken"),
		ev(2, timeline.PodDeleted, "broken"),
	}
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 4, traffic.Refused)}, opts(1))
	if a := res.Attributions[0]; a.Cause != diagnose.Other {
		t.Errorf("got %s (%s)", a.Cause, a.Evidence)
	}
}

// TestModelEventsAreNotRead: what only the lab's model knows (when apps
// really listened and closed, when each node applied a change) must change
// nothing: alone it explains no failure, and added to the observers' events
// it changes no attribution, even where it would settle an ambiguity.
func TestModelEventsAreNotRead(t *testing.T) {
	t.Parallel()
	model := []timeline.Event{
		ev(0, timeline.PodListening, "old"),
		{At: at(0), Kind: timeline.NodeAdded, Pod: "old", Node: 0},
		ev(2, timeline.PodSIGTERM, "old"),
		ev(2, timeline.PodClosed, "old"),
		{At: at(2.2), Kind: timeline.NodeRemoved, Pod: "old", Node: 0},
		{At: at(2.2), Kind: timeline.NodeAdded, Pod: "new", Node: 0},
		ev(4, timeline.PodListening, "new"),
	}
	failures := []traffic.Record{rec(1, 2.1, traffic.Refused), rec(2, 2.5, traffic.Refused), rec(3, 3.5, traffic.Refused)}
	alone := diagnose.Diagnose(model, failures, opts(1))
	for _, a := range alone.Attributions {
		if a.Cause != diagnose.Other {
			t.Errorf("request %d attributed to %s from model-only events (%s)", a.Seq, a.Cause, a.Evidence)
		}
	}
	if len(alone.Signals) != 0 {
		t.Errorf("signals %v: model events are no observer's", alone.Signals)
	}
	observed := diagnose.Diagnose(step, failures, opts(1))
	both := diagnose.Diagnose(append(append([]timeline.Event(nil), step...), model...), failures, opts(1))
	for i := range failures {
		o, b := observed.Attributions[i], both.Attributions[i]
		if o.Cause != b.Cause || o.Certainty != b.Certainty || o.Evidence != b.Evidence {
			t.Errorf("request %d: %s (%s) with the observers alone, %s (%s) with the model's events too", o.Seq, o.Cause, o.Evidence, b.Cause, b.Evidence)
		}
	}
	if observed.Attributions[0].Cause != diagnose.Ambiguous {
		t.Errorf("request 1 should be ambiguous to the observers (the model knows it went to old): %s", observed.Attributions[0].Cause)
	}
}

func TestFailedAt(t *testing.T) {
	t.Parallel()
	r := rec(1, 1, traffic.Refused)
	r.Latency = time.Second
	if !diagnose.FailedAt(r).Equal(at(1)) {
		t.Error("a refused connection fails when it starts")
	}
	r.Class = traffic.Reset
	if !diagnose.FailedAt(r).Equal(at(2)) {
		t.Error("a reset fails when it is cut")
	}
}

// TestExitedIsGone: a pod whose container the watch saw terminate no
// longer accepts, whatever the prober last saw (its address may simply
// stop answering, which the prober does not count).
func TestExitedIsGone(t *testing.T) {
	t.Parallel()
	events := []timeline.Event{
		{At: at(0), Kind: timeline.PodCreated, Pod: "old", Node: -1, Readiness: true},
		ev(0, timeline.EndpointAdded, "old"),
		look(0.05, -1, timeline.PodAccepting, "old"),
		ev(2, timeline.PodDeleted, "old"),
		ev(2.2, timeline.PodExited, "old"),
	}
	o := opts(1)
	o.ProbePeriod = 20 * time.Millisecond // its last look saw it accepting at 2.16s or later
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 2.5, traffic.ConnectTimeout), rec(2, 2.1, traffic.ConnectTimeout),
		rec(3, 2.18, traffic.Refused)}, o)
	if a := res.Attributions[0]; a.Cause != diagnose.Case1 {
		t.Errorf("after the exit: got %s (%s)", a.Cause, a.Evidence)
	}
	if a := res.Attributions[1]; a.Cause != diagnose.Other {
		t.Errorf("before the exit, when the prober still saw it accepting: got %s (%s)", a.Cause, a.Evidence)
	}
	if a := res.Attributions[2]; a.Cause != diagnose.Case1 {
		t.Errorf("between the prober's last look and the exit: got %s (%s)", a.Cause, a.Evidence)
	}
}

// TestFallbackToTerminating: one replica, replaced with maxSurge 0. While
// no endpoint is ready kube-proxy keeps sending to the terminating pod that
// still serves, so a failure long past the budget after its deletion, when
// it has just stopped accepting, is still Case 1.
func TestFallbackToTerminating(t *testing.T) {
	t.Parallel()
	events := []timeline.Event{
		{At: at(0), Kind: timeline.PodCreated, Pod: "old", Node: -1, PreStop: 3 * time.Second},
		ev(0, timeline.EndpointAdded, "old"),
		look(0.05, -1, timeline.PodAccepting, "old"),
		ev(2, timeline.PodDeleted, "old"),
		ev(2, timeline.EndpointTerminating, "old"),
		{At: at(2.1), Kind: timeline.PodCreated, Pod: "new", Node: -1, Readiness: true},
		look(5.05, 4.95, timeline.PodRefusing, "old"), // preStop over at 5s
		ev(5.5, timeline.EndpointNotServing, "old"),
		ev(6, timeline.EndpointAdded, "new"),
	}
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 5.2, traffic.Refused), rec(2, 7.0, traffic.Refused)}, opts(1))
	if a := res.Attributions[0]; a.Cause != diagnose.Case1 {
		t.Errorf("while nothing was ready and old still served: got %s (%s)", a.Cause, a.Evidence)
	}
	if a := res.Attributions[1]; a.Cause != diagnose.Other {
		t.Errorf("after new was ready and old had stopped serving, past the budget: got %s (%s)", a.Cause, a.Evidence)
	}
}
