package measure

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// SchemaVersion names the JSON report's schema; it changes when a field
// changes meaning or goes away.
const SchemaVersion = "rollguard.io/measure/v1"

// Safety is the factor the recommended preStop puts over the slowest
// node's p99 removal latency.
const Safety = 1.5

// Latency is one node's latency in one sample. Censored means the node
// had not changed when measure stopped waiting (the hold was over): the
// true latency is more than D.
type Latency struct {
	D        time.Duration `json:"ns"`
	Censored bool          `json:"censored,omitempty"`
}

// Sample is one canary deletion.
type Sample struct {
	Pod         string             `json:"pod"`
	Deleted     time.Time          `json:"deleted"`
	Replacement string             `json:"replacement,omitempty"`
	Removal     map[string]Latency `json:"removal"`
	Addition    map[string]Latency `json:"addition,omitempty"`
}

func (s Sample) words(nodes []string) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s removal %s, addition %s", n, s.Removal[n].words(), s.Addition[n].words()))
	}
	return strings.Join(parts, "; ")
}

func (l Latency) words() string {
	if l.Censored {
		return "more than " + l.D.Round(time.Second).String()
	}
	return l.D.Round(10 * time.Millisecond).String()
}

// Stats summarise latencies: nearest-rank percentiles over the samples
// that were not censored, and how many were.
type Stats struct {
	Count    int           `json:"count"`
	Censored int           `json:"censored,omitempty"`
	P50      time.Duration `json:"p50Ns"`
	P99      time.Duration `json:"p99Ns"`
	Max      time.Duration `json:"maxNs"`
}

// NodeStats are one node's figures.
type NodeStats struct {
	Node     string `json:"node"`
	Removal  Stats  `json:"removal"`
	Addition Stats  `json:"addition"`
}

// Report is what a run measured and recommends.
type Report struct {
	Schema    string   `json:"schema"`
	Namespace string   `json:"namespace"`
	Target    string   `json:"target"`
	Nodes     []string `json:"nodes"`
	// Rate is requests per second from each node; Canaries the canary
	// replicas; Resolution the mean gap between two requests from one
	// node to one canary, within which each latency is known.
	Rate       float64       `json:"ratePerNode"`
	Canaries   int           `json:"canaries"`
	Resolution time.Duration `json:"resolutionNs"`
	// Hold is the longest latency measurable (--max-propagation).
	Hold      time.Duration `json:"maxPropagationNs"`
	Requested int           `json:"samplesRequested"`
	Start     time.Time     `json:"start"`
	End       time.Time     `json:"end"`
	// Partial is set when the run was interrupted or timed out: the
	// figures cover the samples done.
	Partial  bool     `json:"partial"`
	Warnings []string `json:"warnings,omitempty"`
	// Sent and Failed count the probers' requests from the end of the
	// warm-up (every canary reached from every node) on; WarmupFailed
	// those that failed before it.
	Sent         int `json:"sent"`
	Failed       int `json:"failed"`
	WarmupFailed int `json:"warmupFailed,omitempty"`

	Removal  Stats       `json:"removal"`
	Addition Stats       `json:"addition"`
	PerNode  []NodeStats `json:"perNode"`
	// PreStop is the recommended preStop delay (and propagationBudget),
	// by Formula; 0 when no removal was measured.
	PreStop time.Duration `json:"recommendedPreStopNs"`
	Formula string        `json:"formula"`
	// Sync is the verdict on how evenly the nodes apply changes.
	Sync    string   `json:"sync"`
	Samples []Sample `json:"samples"`

	// Warm is set once every canary had heard from every node.
	Warm bool `json:"-"`
}

// stats summarises latencies.
func stats(ls []Latency) Stats {
	var ds []time.Duration
	s := Stats{}
	for _, l := range ls {
		if l.Censored {
			s.Censored++
			continue
		}
		ds = append(ds, l.D)
	}
	s.Count = len(ds)
	if len(ds) == 0 {
		return s
	}
	slices.Sort(ds)
	s.P50, s.P99, s.Max = rank(ds, 0.50), rank(ds, 0.99), ds[len(ds)-1]
	return s
}

// rank is the nearest-rank percentile of sorted durations: the smallest
// value at or above which a fraction p of them lie.
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// finish computes the figures from the samples.
func (r *Report) finish() {
	r.End = time.Now()
	var allR, allA []Latency
	r.PerNode = nil
	for _, n := range r.Nodes {
		var rs, as []Latency
		for _, s := range r.Samples {
			if l, ok := s.Removal[n]; ok {
				rs = append(rs, l)
			}
			if l, ok := s.Addition[n]; ok {
				as = append(as, l)
			}
		}
		allR, allA = append(allR, rs...), append(allA, as...)
		r.PerNode = append(r.PerNode, NodeStats{Node: n, Removal: stats(rs), Addition: stats(as)})
	}
	r.Removal, r.Addition = stats(allR), stats(allA)
	r.PreStop, r.Formula = Recommend(r.PerNode, r.Hold)
	r.Sync = syncVerdict(r.PerNode, r.Resolution)
}

// Recommend is the preStop delay the figures call for: the slowest node's
// p99 removal latency times Safety, rounded up to the second, and at
// least a second. A censored removal (a node that had not changed when
// the hold ended) makes it at least the hold. It returns 0 and why when
// nothing was measured.
func Recommend(nodes []NodeStats, hold time.Duration) (time.Duration, string) {
	var worst time.Duration
	var at string
	samples := 0
	censored := false
	measured := false
	for _, n := range nodes {
		if n.Removal.Count > 0 {
			measured = true
			if n.Removal.P99 > worst || at == "" {
				worst, at, samples = n.Removal.P99, n.Node, n.Removal.Count
			}
		}
		censored = censored || n.Removal.Censored > 0
	}
	if censored {
		return ceilSecond(time.Duration(float64(hold) * Safety)), fmt.Sprintf("some node still routed to a deleted canary after --max-propagation %s: at least %s x %g, rounded up to the second; measure again with a longer --max-propagation", hold, hold, Safety)
	}
	if !measured {
		return 0, "no removal was measured"
	}
	d := ceilSecond(time.Duration(float64(max(worst, 0)) * Safety))
	of := fmt.Sprintf("%d samples", samples)
	if samples < 100 {
		of += ": with fewer than 100, p99 is the largest" // nearest rank
	}
	return max(d, time.Second), fmt.Sprintf("max over nodes of p99 removal (%s, node %s, %s) x %g, rounded up to the second (at least 1s)",
		worst.Round(time.Millisecond), at, of, Safety)
}

func ceilSecond(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// syncVerdict compares the nodes' median removal latencies.
func syncVerdict(nodes []NodeStats, resolution time.Duration) string {
	var ms []NodeStats
	for _, n := range nodes {
		if n.Removal.Count > 0 {
			ms = append(ms, n)
		}
	}
	switch len(ms) {
	case 0:
		return "no removal was measured"
	case 1:
		return fmt.Sprintf("one node measured (%s): median removal %s", ms[0].Node, ms[0].Removal.P50.Round(10*time.Millisecond))
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Removal.P50 < ms[j].Removal.P50 })
	fast, slow := ms[0], ms[len(ms)-1]
	gap := slow.Removal.P50 - fast.Removal.P50
	if gap > max(500*time.Millisecond, 5*resolution) {
		return fmt.Sprintf("node %s applies endpoint changes %s later than node %s (median removal %s vs %s): look at its kube-proxy (its --config minSyncPeriod, its load, its sync duration metric)",
			slow.Node, gap.Round(10*time.Millisecond), fast.Node, slow.Removal.P50.Round(10*time.Millisecond), fast.Removal.P50.Round(10*time.Millisecond))
	}
	if gap < resolution {
		return fmt.Sprintf("the %d nodes apply endpoint changes equally fast, within the resolution (median removal %s to %s)",
			len(ms), fast.Removal.P50.Round(10*time.Millisecond), slow.Removal.P50.Round(10*time.Millisecond))
	}
	return fmt.Sprintf("the %d nodes apply endpoint changes within %s of each other (median removal %s to %s)",
		len(ms), gap.Round(10*time.Millisecond), fast.Removal.P50.Round(10*time.Millisecond), slow.Removal.P50.Round(10*time.Millisecond))
}

// WriteText writes the table and recommendation a person reads.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint propagation in this cluster: %d samples (of %d asked), %g requests/s from each of %d nodes to %s, resolution about %s\n",
		len(r.Samples), r.Requested, r.Rate, len(r.Nodes), r.Target, r.Resolution.Round(time.Millisecond))
	fmt.Fprintf(&b, "\n%-24s %-34s %s\n", "NODE", "REMOVAL p50 / p99 / max (n)", "ADDITION p50 / p99 / max (n)")
	row := func(name string, rm, ad Stats) {
		fmt.Fprintf(&b, "%-24s %-34s %s\n", name, rm.words(), ad.words())
	}
	for _, n := range r.PerNode {
		row(n.Node, n.Removal, n.Addition)
	}
	row("all nodes", r.Removal, r.Addition)
	b.WriteString("\nremoval: from a deleted pod's preStop call to the last request a node sent it; addition: from a new pod's\nfirst readiness answer to the first request a node sent it. Both in the canary's own clock.\n\n")
	fmt.Fprintf(&b, "kube-proxy: %s\n", r.Sync)
	if r.Failed > 0 {
		fmt.Fprintf(&b, "probe requests: %d, failed: %d\n", r.Sent, r.Failed)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if r.PreStop > 0 {
		fmt.Fprintf(&b, "recommended preStop: sleep %s (propagationBudget: %s)\n  formula: %s\n", r.PreStop, r.PreStop, r.Formula)
	} else {
		fmt.Fprintf(&b, "recommended preStop: none (%s)\n", r.Formula)
	}
	if r.Partial {
		b.WriteString("incomplete run: the figures cover the samples above only\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (s Stats) words() string {
	if s.Count == 0 {
		if s.Censored > 0 {
			return fmt.Sprintf("all %d over the hold", s.Censored)
		}
		return "-"
	}
	out := fmt.Sprintf("%s / %s / %s (%d)", s.P50.Round(10*time.Millisecond), s.P99.Round(10*time.Millisecond), s.Max.Round(10*time.Millisecond), s.Count)
	if s.Censored > 0 {
		out += fmt.Sprintf(" +%d over", s.Censored)
	}
	return out
}
