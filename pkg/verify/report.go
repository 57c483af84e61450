package verify

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/lab"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// SchemaVersion names the JSON report's schema; it changes when a field
// changes meaning or goes away.
const SchemaVersion = "rollguard.io/verify/v1"

// Report is what a run measured and concluded.
type Report struct {
	Schema    string       `json:"schema"`
	Workload  string       `json:"workload"`
	Namespace string       `json:"namespace"`
	Service   string       `json:"service"`
	Target    string       `json:"target"`
	Mode      traffic.Mode `json:"mode"`
	Rate      float64      `json:"rate"`
	Agents    []AgentInfo  `json:"agents"`
	// Budget and ProbePeriod are what the diagnosis assumed.
	Budget      time.Duration `json:"budgetNs"`
	ProbePeriod time.Duration `json:"probePeriodNs"`
	Start       time.Time     `json:"start"`
	Triggered   time.Time     `json:"triggered,omitzero"`
	RolledOut   time.Time     `json:"rolledOut,omitzero"`
	// Partial is set when the run was interrupted or the rollout did not
	// complete.
	Partial bool `json:"partial"`
	// Warnings say what may make the figures incomplete.
	Warnings  []string         `json:"warnings,omitempty"`
	Requests  int              `json:"requests"`
	Failed    int              `json:"failed"`
	ByClass   map[string]int   `json:"byClass"`
	Latency   Latency          `json:"latency"`
	Intervals []Interval       `json:"intervals"`
	Diagnosis diagnose.Result  `json:"diagnosis"`
	Failures  []traffic.Record `json:"failures"`
	Timeline  []timeline.Event `json:"timeline"`

	summary   *traffic.Summary
	latencies []time.Duration
}

// AgentInfo is one agent: where it ran, and how its clock relates to
// verify's (its times were shifted by ClockOffset; the shift is known
// within ClockBound).
type AgentInfo struct {
	Index       int           `json:"index"`
	Node        string        `json:"node"`
	Pod         string        `json:"pod"`
	ClockOffset time.Duration `json:"clockOffsetNs"`
	ClockBound  time.Duration `json:"clockBoundNs"`
}

// Latency of every request, failed ones included, from its intended start.
type Latency struct {
	P50 time.Duration `json:"p50Ns"`
	P99 time.Duration `json:"p99Ns"`
	Max time.Duration `json:"maxNs"`
}

// Interval is a run of failures from one node with no gap longer than
// intervalGap, and what the diagnosis made of them.
type Interval struct {
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	Node     string         `json:"node"`
	Failed   int            `json:"failed"`
	ByClass  map[string]int `json:"byClass"`
	ByCause  map[string]int `json:"byCause"`
	Pods     []string       `json:"pods,omitempty"`
	Rules    []string       `json:"rules,omitempty"`
	Evidence string         `json:"evidence"`
}

const intervalGap = time.Second

// Lossless reports whether no request failed.
func (r *Report) Lossless() bool { return r.Failed == 0 }

// diagnose fills in the summary, the diagnosis and the intervals.
func (r *run) diagnose() {
	rep := r.rep
	if rep.summary == nil {
		rep.summary = traffic.NewSummary()
	}
	rep.Requests = rep.summary.Total
	rep.Failed = rep.summary.Failed()
	rep.ByClass = map[string]int{}
	for c, n := range rep.summary.ByClass {
		rep.ByClass[string(c)] = n
	}
	rep.Latency = latency(rep.latencies)
	sort.Slice(rep.Failures, func(i, j int) bool { return rep.Failures[i].Intended.Before(rep.Failures[j].Intended) })
	rep.Timeline = r.tl.Events()
	nodes := map[int]string{}
	for _, a := range rep.Agents {
		nodes[a.Index] = a.Node
	}
	rep.Diagnosis = diagnose.Diagnose(rep.Timeline, rep.Failures, diagnose.Options{Budget: rep.Budget, ProbePeriod: rep.ProbePeriod,
		Rule: r.ruleFor(), Start: rep.Start, NodeName: func(i int) string { return nodes[i] }})
	rep.Intervals = intervals(rep.Diagnosis.Attributions, nodes)
}

func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Latency{P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
}

// intervals groups failures by node into runs without a gap longer than
// intervalGap.
func intervals(as []diagnose.Attribution, nodes map[int]string) []Interval {
	by := map[int][]diagnose.Attribution{}
	for _, a := range as {
		by[a.Node] = append(by[a.Node], a)
	}
	var out []Interval
	for node, list := range by {
		sort.Slice(list, func(i, j int) bool { return list[i].At.Before(list[j].At) })
		var cur *Interval
		var ev map[string]int
		flush := func() {
			if cur == nil {
				return
			}
			// The interval's evidence is its commonest attribution's.
			best := ""
			for e, n := range ev {
				if best == "" || n > ev[best] || (n == ev[best] && e < best) {
					best = e
				}
			}
			cur.Evidence = best
			sort.Strings(cur.Pods)
			sort.Strings(cur.Rules)
			out = append(out, *cur)
		}
		for _, a := range list {
			if cur == nil || a.At.Sub(cur.To) > intervalGap {
				flush()
				cur = &Interval{From: a.At, To: a.At, Node: nodes[node], ByClass: map[string]int{}, ByCause: map[string]int{}}
				ev = map[string]int{}
			}
			cur.To = a.At
			cur.Failed++
			cur.ByClass[string(a.Class)]++
			cur.ByCause[string(a.Cause)]++
			ev[a.Evidence]++
			for _, p := range append(append(append([]string(nil), a.Pods...), a.Case1Pods...), a.Case2Pods...) {
				if !contains(cur.Pods, p) {
					cur.Pods = append(cur.Pods, p)
				}
			}
			if a.Rule != "" && !contains(cur.Rules, a.Rule) {
				cur.Rules = append(cur.Rules, a.Rule)
			}
		}
		flush()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].From.Equal(out[j].From) {
			return out[i].From.Before(out[j].From)
		}
		return out[i].Node < out[j].Node
	})
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ruleFor names the rule whose fix prevents a cause: the rules registry
// runs over the workload and its Service as the cluster holds them, and
// the first rule of the cause's case that fires is the answer. The
// diagnosis itself knows no rule.
func (r *run) ruleFor() func(diagnose.Cause, diagnose.PodSpec) string {
	if r.w == nil || r.svc == nil {
		return nil
	}
	apiVersion, kind := "apps/v1", map[Kind]string{Deployment: "Deployment", StatefulSet: "StatefulSet", DaemonSet: "DaemonSet"}[r.w.kind]
	objs := []*manifest.Object{
		{APIVersion: apiVersion, Kind: kind, Name: r.w.name, Namespace: r.w.namespace, Value: r.w.obj},
		{APIVersion: "v1", Kind: "Service", Name: r.svc.Name, Namespace: r.svc.Namespace, Value: r.svc},
	}
	m := model.Build(objs, model.Options{})
	settings := rules.DefaultSettings()
	if r.opts.Budget > 0 {
		settings.PropagationBudget = r.opts.Budget
	}
	first := map[rules.Case]string{}
	for _, f := range rules.Default().Run(m, rules.Options{Settings: settings}).Findings {
		if id, ok := first[f.Rule.Case]; !ok || f.Rule.ID < id {
			first[f.Rule.Case] = f.Rule.ID
		}
	}
	return func(c diagnose.Cause, _ diagnose.PodSpec) string {
		switch c {
		case diagnose.Case1:
			return first[rules.Case1]
		case diagnose.Case2:
			return first[rules.Case2]
		}
		return ""
	}
}

// WriteText writes the summary a person reads.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s, Service %s (%s), %s traffic at %g requests/s from %d nodes\n",
		r.Workload, r.Namespace, r.Service, r.Target, r.Mode, r.Rate, len(r.Agents))
	for _, a := range r.Agents {
		fmt.Fprintf(&b, "  agent on %s: clock offset %s ± %s\n", a.Node, a.ClockOffset.Round(time.Microsecond), a.ClockBound.Round(time.Microsecond))
	}
	if !r.RolledOut.IsZero() {
		fmt.Fprintf(&b, "rollout: %s (triggered %s after the start)\n", r.RolledOut.Sub(r.Triggered).Round(10*time.Millisecond),
			r.Triggered.Sub(r.Start).Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "requests: %d, failed: %d", r.Requests, r.Failed)
	if r.Failed > 0 {
		fmt.Fprintf(&b, " (%s)", classes(r.ByClass))
	}
	fmt.Fprintf(&b, "\nlatency: p50 %s, p99 %s, max %s\n", r.Latency.P50.Round(10*time.Microsecond), r.Latency.P99.Round(10*time.Microsecond),
		r.Latency.Max.Round(10*time.Microsecond))
	if len(r.Intervals) > 0 {
		b.WriteString("failures:\n")
		for _, iv := range r.Intervals {
			fmt.Fprintf(&b, "  %s-%s, node %s, %d failed (%s): %s; %s", iv.From.Format("15:04:05.0"), iv.To.Format("15:04:05.0"), iv.Node, iv.Failed,
				classWords(iv.ByClass), iv.Evidence, causeWords(iv.ByCause))
			if len(iv.Rules) > 0 {
				fmt.Fprintf(&b, ", fixed by %s", strings.Join(iv.Rules, ", "))
			}
			b.WriteString("\n")
		}
		d := r.Diagnosis
		fmt.Fprintf(&b, "diagnosis (budget %s, probe every %s): Case 1 %d, Case 2 %d, ambiguous %d, other %d\n", r.Budget, r.ProbePeriod,
			d.Counts[diagnose.Case1], d.Counts[diagnose.Case2], d.Counts[diagnose.Ambiguous], d.Counts[diagnose.Other])
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	switch {
	case r.Partial:
		b.WriteString("verdict: incomplete run (see above)\n")
	case r.Failed == 0:
		b.WriteString("verdict: lossless: no request failed during the rollout\n")
	default:
		fmt.Fprintf(&b, "verdict: %d of %d requests failed during the rollout\n", r.Failed, r.Requests)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func classWords(m map[string]int) string {
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func causeWords(m map[string]int) string {
	names := map[string]string{"case1": "Case 1", "case2": "Case 2", "ambiguous": "ambiguous", "other": "other"}
	var parts []string
	for _, c := range []string{"case1", "case2", "ambiguous", "other"} {
		if m[c] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", names[c], m[c]))
		}
	}
	return strings.Join(parts, ", ")
}

// WriteHTML writes the lab's picture of this rollout: a lane per pod (when
// the prober first saw it accept connections, its readiness, deletion and
// exit), a tick per endpoint change, a dot per failed request coloured by
// class, with the text summary above.
func (r *Report) WriteHTML(w io.Writer) error {
	var table strings.Builder
	if err := r.WriteText(&table); err != nil {
		return err
	}
	nodes := make([]string, len(r.Agents))
	for _, a := range r.Agents {
		if a.Index < len(nodes) {
			nodes[a.Index] = a.Node
		}
	}
	verdict := "lossless"
	switch {
	case r.Partial:
		verdict = "partial"
	case r.Failed > 0:
		verdict = "LOSSY"
	}
	page := lab.Page{Name: r.Workload, Verdict: verdict, Start: r.Start, Requests: r.Requests, Failed: r.Failed,
		Nodes: nodes, Timeline: laneEvents(r.Timeline), Failures: r.Failures, Diagnosis: r.Diagnosis}
	return lab.WritePages(w, "rollguard verify", table.String(), []lab.Page{page})
}

// laneEvents turns what the observers saw into the lanes' events: the
// first look that found a pod accepting (from any agent) is when it
// listened, the first refusal after that when it closed; endpoint changes
// are the ticks.
func laneEvents(events []timeline.Event) []timeline.Event {
	listening := map[string]bool{}
	var out []timeline.Event
	for _, e := range events {
		switch e.Kind {
		case timeline.PodAccepting:
			if !listening[e.Pod] {
				listening[e.Pod] = true
				out = append(out, timeline.Event{At: e.At, Kind: timeline.PodListening, Pod: e.Pod, Node: -1})
			}
		case timeline.PodRefusing:
			if listening[e.Pod] {
				listening[e.Pod] = false
				out = append(out, timeline.Event{At: e.At, Kind: timeline.PodClosed, Pod: e.Pod, Node: -1})
			}
		case timeline.EndpointAdded, timeline.EndpointTerminating, timeline.EndpointNotServing, timeline.EndpointRemoved:
			out = append(out, timeline.Event{At: e.At, Kind: timeline.NodeAdded, Pod: e.Pod, Node: -1})
		case timeline.ConnTracked:
		default:
			out = append(out, e)
		}
	}
	return out
}
