package measure

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestStats(t *testing.T) {
	t.Parallel()
	var ls []Latency
	for i := 1; i <= 100; i++ {
		ls = append(ls, Latency{D: ms(i)})
	}
	ls = append(ls, Latency{D: ms(5000), Censored: true})
	s := stats(ls)
	want := Stats{Count: 100, Censored: 1, P50: ms(50), P99: ms(99), Max: ms(100)}
	if s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if s := stats([]Latency{{D: ms(7)}}); s.P50 != ms(7) || s.P99 != ms(7) || s.Max != ms(7) || s.Count != 1 {
		t.Errorf("one sample: %+v", s)
	}
	if s := stats(nil); s != (Stats{}) {
		t.Errorf("no sample: %+v", s)
	}
	// Unsorted input, negative values (a node that stopped before the
	// preStop call) keep their sign.
	if s := stats([]Latency{{D: ms(300)}, {D: ms(-200)}, {D: ms(100)}}); s.P50 != ms(100) || s.Max != ms(300) {
		t.Errorf("unsorted: %+v", s)
	}
}

func TestRecommend(t *testing.T) {
	t.Parallel()
	node := func(name string, p99 time.Duration, censored int) NodeStats {
		return NodeStats{Node: name, Removal: Stats{Count: 5, P50: p99 / 2, P99: p99, Max: p99, Censored: censored}}
	}
	for _, tc := range []struct {
		name  string
		nodes []NodeStats
		want  time.Duration
		says  string
	}{
		{"slowest node rules", []NodeStats{node("a", ms(600), 0), node("b", ms(4100), 0)}, 7 * time.Second, "4.1s, node b, 5 samples: with fewer than 100, p99 is the largest) x 1.5"},
		{"exact seconds stay", []NodeStats{node("a", 2*time.Second, 0)}, 3 * time.Second, "node a"},
		{"at least a second", []NodeStats{node("a", ms(100), 0)}, time.Second, "at least 1s"},
		{"negative is nothing", []NodeStats{node("a", ms(-300), 0)}, time.Second, "node a"},
		{"censored", []NodeStats{node("a", ms(100), 1)}, 45 * time.Second, "longer --max-propagation"},
		{"nothing measured", []NodeStats{{Node: "a"}}, 0, "no removal"},
	} {
		got, why := Recommend(tc.nodes, 30*time.Second)
		if got != tc.want || !strings.Contains(why, tc.says) {
			t.Errorf("%s: %s (%s), want %s (%q)", tc.name, got, why, tc.want, tc.says)
		}
	}
}

func TestSyncVerdict(t *testing.T) {
	t.Parallel()
	n := func(name string, p50 time.Duration) NodeStats {
		return NodeStats{Node: name, Removal: Stats{Count: 3, P50: p50, P99: p50, Max: p50}}
	}
	if v := syncVerdict([]NodeStats{n("a", ms(200)), n("b", ms(4200))}, ms(20)); !strings.Contains(v, "node b applies endpoint changes 4s later than node a") {
		t.Errorf("slow node: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(200)), n("b", ms(500))}, ms(20)); !strings.Contains(v, "within 300ms") {
		t.Errorf("even nodes: %s", v)
	}
	// A gap within the resolution is not a finding.
	if v := syncVerdict([]NodeStats{n("a", ms(200)), n("b", ms(900))}, ms(200)); !strings.Contains(v, "within 700ms") {
		t.Errorf("coarse resolution: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(200)), n("b", ms(205))}, ms(20)); !strings.Contains(v, "equally fast, within the resolution") {
		t.Errorf("a gap below the resolution: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(200)), {Node: "b"}}, ms(20)); !strings.Contains(v, "one node measured (a)") {
		t.Errorf("one node: %s", v)
	}
}

// TestReportFinish: per-node and pooled figures from samples, with the
// recommendation and the verdict, and the text a person reads.
func TestReportFinish(t *testing.T) {
	t.Parallel()
	r := &Report{Nodes: []string{"a", "b"}, Rate: 100, Canaries: 2, Resolution: ms(20), Hold: 30 * time.Second, Requested: 3, Target: "10.0.0.1:80"}
	for _, d := range []struct{ a, b time.Duration }{{ms(100), ms(900)}, {ms(300), ms(1100)}, {ms(200), ms(1000)}} {
		r.Samples = append(r.Samples, Sample{Removal: map[string]Latency{"a": {D: d.a}, "b": {D: d.b}},
			Addition: map[string]Latency{"a": {D: ms(500)}, "b": {D: ms(700)}}})
	}
	r.finish()
	if r.PerNode[1].Removal.P99 != ms(1100) || r.Removal.Count != 6 || r.Removal.P50 != ms(300) || r.Addition.Max != ms(700) {
		t.Errorf("figures: %+v / %+v", r.PerNode, r.Removal)
	}
	if r.PreStop != 2*time.Second {
		t.Errorf("recommended %s, want 2s (1.1s x 1.5 = 1.65s, rounded up)", r.PreStop)
	}
	if !strings.Contains(r.Sync, "node b applies endpoint changes 800ms later than node a") {
		t.Errorf("sync: %s", r.Sync)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 samples (of 3 asked)", "resolution about 20ms", "b                        1s / 1.1s / 1.1s (3)", "recommended preStop: sleep 2s (propagationBudget: 2s)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestTimedOut: the run's own deadline is an InputError that says
// --timeout (exit 2); an interruption from outside stays context.Canceled
// (exit 130); other errors pass through.
func TestTimedOut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Nanosecond, errTimeout)
	defer cancel()
	<-ctx.Done()
	var ie *InputError
	if err := timedOut(ctx, context.DeadlineExceeded); !errors.As(err, &ie) || !strings.Contains(err.Error(), "--timeout") {
		t.Errorf("own deadline: %v", err)
	}
	if err := timedOut(ctx, nil); !errors.As(err, &ie) {
		t.Errorf("own deadline, no error: %v", err)
	}
	other := errors.New("canary x: GET /state: 500")
	if err := timedOut(ctx, other); err != other {
		t.Errorf("another error after the deadline: %v", err)
	}
	outer, stop := context.WithCancel(context.Background())
	stop()
	if err := timedOut(outer, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted: %v", err)
	}
	if err := timedOut(context.Background(), nil); err != nil {
		t.Errorf("nothing wrong: %v", err)
	}
}

// TestStatsCensoredAnywhere: a censored latency is skipped wherever it
// stands, and the text says how many were over the hold.
func TestStatsCensoredAnywhere(t *testing.T) {
	t.Parallel()
	s := stats([]Latency{{D: ms(100)}, {D: ms(9000), Censored: true}, {D: ms(300)}, {D: ms(200)}})
	if s.Count != 3 || s.Censored != 1 || s.Max != ms(300) || s.P50 != ms(200) {
		t.Errorf("stats = %+v", s)
	}
	if w := s.words(); w != "200ms / 300ms / 300ms (3) +1 over" {
		t.Errorf("words = %q", w)
	}
	if w := (Stats{Censored: 2}).words(); w != "all 2 over the hold" {
		t.Errorf("all censored: %q", w)
	}
	if w := (Stats{}).words(); w != "-" {
		t.Errorf("nothing: %q", w)
	}
}

// TestSyncVerdictBoundaries: a gap of exactly 500ms (or 5 resolutions) is
// not yet a slow node; a gap of exactly the resolution is not "equally
// fast".
func TestSyncVerdictBoundaries(t *testing.T) {
	t.Parallel()
	n := func(name string, p50 time.Duration) NodeStats {
		return NodeStats{Node: name, Removal: Stats{Count: 3, P50: p50, P99: p50, Max: p50}}
	}
	if v := syncVerdict([]NodeStats{n("a", ms(100)), n("b", ms(600))}, ms(20)); !strings.Contains(v, "within 500ms") {
		t.Errorf("a 500ms gap: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(100)), n("b", ms(601))}, ms(20)); !strings.Contains(v, "node b applies endpoint changes") {
		t.Errorf("a 501ms gap: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(100)), n("b", ms(1100))}, ms(200)); !strings.Contains(v, "within 1s") {
		t.Errorf("a gap of 5 resolutions: %s", v)
	}
	if v := syncVerdict([]NodeStats{n("a", ms(100)), n("b", ms(120))}, ms(20)); !strings.Contains(v, "within 20ms") {
		t.Errorf("a gap of one resolution: %s", v)
	}
}

// TestWriteTextFailuresAndNoRecommendation: failed probe requests are
// shown; with nothing measured there is no preStop to recommend.
func TestWriteTextFailuresAndNoRecommendation(t *testing.T) {
	t.Parallel()
	r := &Report{Nodes: []string{"a"}, Rate: 100, Canaries: 2, Hold: 30 * time.Second, Requested: 1, Sent: 50, Failed: 3, Partial: true}
	r.finish()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"probe requests: 50, failed: 3", "recommended preStop: none (no removal was measured)", "incomplete run"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	r.Failed, r.Partial = 0, false
	b.Reset()
	_ = r.WriteText(&b)
	if strings.Contains(b.String(), "probe requests") || strings.Contains(b.String(), "incomplete") {
		t.Errorf("no failure, complete run:\n%s", b.String())
	}
}
