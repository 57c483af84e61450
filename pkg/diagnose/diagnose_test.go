package diagnose_test

import (
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ev(s float64, kind timeline.Kind, pod string, node int) timeline.Event {
	return timeline.Event{At: at(s), Kind: kind, Pod: pod, Node: node}
}

// A rolling step seen from one node that applies changes 1s late: old is
// deleted and closes at 2s; new is added at 2s and listens at 4s.
var step = []timeline.Event{
	{At: at(0), Kind: timeline.PodCreated, Pod: "old", Node: -1},
	ev(0, timeline.PodListening, "old", -1),
	ev(0, timeline.NodeAdded, "old", 0),
	{At: at(1), Kind: timeline.PodCreated, Pod: "new", Node: -1, Readiness: false},
	ev(2, timeline.PodDeleted, "old", -1),
	ev(2, timeline.PodClosed, "old", -1),
	ev(2, timeline.EndpointRemoved, "old", -1),
	ev(2, timeline.EndpointAdded, "new", -1),
	ev(3, timeline.NodeRemoved, "old", 0),
	ev(3, timeline.NodeAdded, "new", 0),
	ev(4, timeline.PodListening, "new", -1),
}

func rec(seq int64, start float64, class traffic.Class) traffic.Record {
	return traffic.Record{Seq: seq, Node: 0, Intended: at(start), Start: at(start), Class: class}
}

func TestDiagnose(t *testing.T) {
	t.Parallel()
	reset := rec(4, 1.9, traffic.Reset)
	reset.Latency = 200 * time.Millisecond // cut at 2.1s, after old closed
	res := diagnose.Diagnose(step, []traffic.Record{
		rec(1, 2.5, traffic.Refused), // node still routes to old, which has closed
		rec(2, 3.5, traffic.Refused), // node routes to new, which does not listen yet
		rec(3, 1.0, traffic.Refused), // old listening: nothing explains it
		reset,
	}, t0)
	want := []struct {
		cause diagnose.Cause
		rule  string
	}{{diagnose.Case1, "RG101"}, {diagnose.Case2, "RG201"}, {diagnose.Other, ""}, {diagnose.Case1, "RG101"}}
	for i, a := range res.Attributions {
		if a.Cause != want[i].cause || a.Rule != want[i].rule || a.Evidence == "" {
			t.Errorf("request %d: %s %s (%s), want %s %s", a.Seq, a.Cause, a.Rule, a.Evidence, want[i].cause, want[i].rule)
		}
	}
	if res.Counts[diagnose.Case1] != 2 || res.Counts[diagnose.Case2] != 1 || res.Ambiguous != 0 {
		t.Errorf("counts %v, ambiguous %d", res.Counts, res.Ambiguous)
	}
}

func TestDiagnoseAmbiguousAndEmpty(t *testing.T) {
	t.Parallel()
	events := append(append([]timeline.Event{}, step...),
		ev(5, timeline.PodDeleted, "new", -1), ev(5, timeline.PodClosed, "new", -1),
		ev(5, timeline.NodeAdded, "newer", 0), ev(5.5, timeline.NodeAdded, "newest", 0),
		ev(9, timeline.NodeRemoved, "new", 0), ev(9, timeline.NodeRemoved, "newer", 0), ev(9, timeline.NodeRemoved, "newest", 0),
	)
	res := diagnose.Diagnose(events, []traffic.Record{rec(1, 6, traffic.Refused), rec(2, 9.5, traffic.Refused)}, t0)
	a := res.Attributions[0]
	if a.Cause != diagnose.Case2 || !a.Ambiguous || len(a.Pods) != 2 {
		t.Errorf("two not-listening pods and one closed one: got %s ambiguous=%v pods=%v", a.Cause, a.Ambiguous, a.Pods)
	}
	if b := res.Attributions[1]; b.Cause != diagnose.Other || b.Evidence != "node 0 had no endpoints" {
		t.Errorf("empty view: %s %q", b.Cause, b.Evidence)
	}
}

// TestDiagnoseFallsBackToServiceEndpoints: without per-node events (what a
// real cluster's watch gives), the Service's own changes are the view.
func TestDiagnoseFallsBackToServiceEndpoints(t *testing.T) {
	t.Parallel()
	var global []timeline.Event
	for _, e := range step {
		if e.Node < 0 {
			global = append(global, e)
		}
	}
	global = append(global, ev(0, timeline.EndpointAdded, "old", -1))
	res := diagnose.Diagnose(global, []traffic.Record{rec(1, 2.5, traffic.Refused)}, t0)
	if a := res.Attributions[0]; a.Cause != diagnose.Case2 {
		t.Errorf("by the Service's view at 2.5s only new is an endpoint, not listening: got %s (%s)", a.Cause, a.Evidence)
	}
}

// TestRulesAreRegistered: every rule the diagnosis names exists in the
// registry and is about the cause it was named for; pods with a preStop
// or a readinessProbe point at the "too short" and "wrong port" rules.
func TestRulesAreRegistered(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	for _, withSpec := range []bool{false, true} {
		events := append([]timeline.Event{}, step...)
		if withSpec {
			events[0].PreStop = time.Second
			events[3].Readiness = true
		}
		res := diagnose.Diagnose(events, []traffic.Record{rec(1, 2.5, traffic.Refused), rec(2, 3.5, traffic.Refused)}, t0)
		want := map[bool][2]string{false: {"RG101", "RG201"}, true: {"RG102", "RG202"}}[withSpec]
		for i, a := range res.Attributions {
			if a.Rule != want[i] {
				t.Errorf("spec %v: %s names %s, want %s", withSpec, a.Cause, a.Rule, want[i])
			}
			r := reg.Lookup(a.Rule)
			if r == nil || string(r.Case) != string(a.Cause) {
				t.Errorf("%s is not a registered rule of %s", a.Rule, a.Cause)
			}
		}
	}
}
