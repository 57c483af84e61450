package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

func (r *Result) count(classes ...traffic.Class) int {
	n := 0
	for _, c := range classes {
		n += r.Summary.ByClass[c]
	}
	return n
}

func (r *Result) verdict() string {
	switch {
	case r.Partial:
		return "partial"
	case r.Lossless():
		return "lossless"
	}
	return "LOSSY"
}

// WriteTable writes the comparison table and what it means.
func WriteTable(out io.Writer, results []*Result) error {
	w := bufio.NewWriter(out)
	nameWidth := len("scenario")
	for _, r := range results {
		nameWidth = max(nameWidth, len(r.Scenario.Name))
	}
	row := "%-*s  %8v  %5v  %6v  %7v  %5v  %7v  %5v  %5v  %5v  %5v  %s\n"
	fmt.Fprintf(w, row, nameWidth, "scenario", "requests", "late", "failed", "refused", "reset", "timeout", "other", "case1", "case2", "ambig", "verdict")
	for _, r := range results {
		other := r.Summary.Failed() - r.count(traffic.Refused, traffic.Reset, traffic.ConnectTimeout, traffic.ResponseTimeout)
		fmt.Fprintf(w, row, nameWidth, r.Scenario.Name, r.Summary.Total, r.Summary.Late, r.Summary.Failed(),
			r.count(traffic.Refused), r.count(traffic.Reset), r.count(traffic.ConnectTimeout, traffic.ResponseTimeout), other,
			r.Diagnosis.Counts[diagnose.Case1], r.Diagnosis.Counts[diagnose.Case2], r.Diagnosis.Counts[diagnose.Ambiguous], r.verdict())
	}
	fmt.Fprintln(w)
	reg := rules.Default()
	for _, r := range results {
		if len(r.Diagnosis.ByRule) == 0 {
			continue
		}
		var parts []string
		for _, id := range sortedKeys(r.Diagnosis.ByRule) {
			parts = append(parts, fmt.Sprintf("%d prevented by %s %s", r.Diagnosis.ByRule[id], id, reg.Lookup(id).Name))
		}
		fmt.Fprintf(w, "%s: %s\n", r.Scenario.Name, strings.Join(parts, ", "))
	}
	fails, decided, right, amb, late := 0, 0, 0, 0, 0
	for _, r := range results {
		for _, a := range r.Diagnosis.Attributions {
			fails++
			switch {
			case a.Cause == diagnose.Ambiguous:
				amb++
			case r.Truth[a.Seq] == a.Cause:
				decided++
				right++
			default:
				decided++
			}
		}
		late += r.Summary.Late
	}
	if fails > 0 {
		pct := 100.0
		if decided > 0 {
			pct = 100 * float64(right) / float64(decided)
		}
		sc := results[0].Scenario
		fmt.Fprintf(w, "\nThe diagnosis, given only what a cluster's observers show (%s; a prober look\n"+
			"every %s; a %s propagation window), matched the ground truth for %.1f%% of the %d failures\n"+
			"it attributed to one case; %d of %d were ambiguous.\n",
			sc.Observers(), sc.probePeriod(), sc.budget().Round(time.Millisecond), pct, decided, amb, fails)
	}
	if late > 0 {
		fmt.Fprintf(w, "%d requests started more than 10ms after their intended time: this machine was too busy to keep the rate.\n", late)
	}
	if len(results) > 0 && results[0].Scenario.NetNS {
		fmt.Fprintln(w, "Each pod had its own network namespace, removed when it exited: requests to a vanished")
		fmt.Fprintln(w, "address time out, or get \"no route to host\" once its ARP entry has expired.")
	} else {
		fmt.Fprintln(w, "On loopback a stopped pod refuses connections; on a real cluster a pod whose address is gone")
		fmt.Fprintln(w, "also gives timeouts and \"no route to host\" (see --netns).")
	}
	if len(results) > 0 {
		fmt.Fprintf(w, "\n%s\n", settingsLine(results[0].Scenario))
	}
	for _, r := range results {
		if r.Partial {
			fmt.Fprintln(w, "Interrupted: the figures are what was measured until then.")
			break
		}
	}
	return w.Flush()
}

// WriteSweep writes failures against preStop length and the smallest
// lossless value.
func WriteSweep(out io.Writer, results []*Result) error {
	w := bufio.NewWriter(out)
	row := "%7v  %8v  %6v  %5v  %5v  %s\n"
	fmt.Fprintf(w, row, "preStop", "requests", "failed", "case1", "case2", "verdict")
	smallest := time.Duration(-1)
	for _, r := range results {
		fmt.Fprintf(w, row, short(r.Scenario.PreStop), r.Summary.Total, r.Summary.Failed(),
			r.Diagnosis.Counts[diagnose.Case1], r.Diagnosis.Counts[diagnose.Case2], r.verdict())
		if smallest < 0 && r.Lossless() && !r.Partial {
			smallest = r.Scenario.PreStop
		}
	}
	if len(results) > 0 {
		slowest := time.Duration(0)
		for _, d := range results[0].Scenario.Propagation {
			slowest = max(slowest, d)
		}
		if smallest >= 0 {
			fmt.Fprintf(w, "\nsmallest lossless preStop: %s (the slowest node applies endpoint changes after %s)\n", short(smallest), slowest.Round(time.Millisecond))
		} else {
			fmt.Fprintf(w, "\nno preStop in the sweep was lossless (the slowest node applies endpoint changes after %s)\n", slowest.Round(time.Millisecond))
		}
		fmt.Fprintf(w, "%s\n", settingsLine(results[0].Scenario))
	}
	return w.Flush()
}

func settingsLine(s Scenario) string {
	var lags []string
	for _, d := range s.Propagation {
		lags = append(lags, d.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("Settings: %d replicas, maxSurge %s, maxUnavailable %s; %d client nodes applying endpoint changes after %s; "+
		"container start %s, listen delay %s, drain %s; %g %s requests/s; seed %d.",
		s.Replicas, s.MaxSurge.String(), s.MaxUnavailable.String(), len(s.Propagation), strings.Join(lags, ", "),
		s.ContainerStart, s.ListenDelay, s.Drain, s.Rate, s.Mode, s.Seed)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// JSON report.

// SchemaVersion versions the lab's JSON output.
const SchemaVersion = "rollguard.io/lab/v2"

type jsonScenario struct {
	Name           string                 `json:"name"`
	Settings       jsonSettings           `json:"settings"`
	Requests       int                    `json:"requests"`
	Failed         int                    `json:"failed"`
	Late           int                    `json:"late"`
	ByClass        map[traffic.Class]int  `json:"byClass"`
	Causes         map[diagnose.Cause]int `json:"causes"`
	ByRule         map[string]int         `json:"byRule"`
	Ambiguous      int                    `json:"ambiguous"`
	Agreement      float64                `json:"groundTruthAgreement"`
	Observers      string                 `json:"observers"`
	Lossless       bool                   `json:"lossless"`
	Partial        bool                   `json:"partial"`
	RolloutSeconds float64                `json:"rolloutSeconds"`
	LatencyMs      map[string]float64     `json:"latencyMs"`
	Failures       []jsonFailure          `json:"failures"`
}

type jsonSettings struct {
	Replicas           int       `json:"replicas"`
	MaxSurge           string    `json:"maxSurge"`
	MaxUnavailable     string    `json:"maxUnavailable"`
	PropagationSeconds []float64 `json:"propagationSeconds"`
	PreStopSeconds     float64   `json:"preStopSeconds"`
	Readiness          bool      `json:"readiness"`
	Rate               float64   `json:"rate"`
	Mode               string    `json:"mode"`
	Seed               int64     `json:"seed"`
}

type jsonFailure struct {
	Seq       int64              `json:"seq"`
	AtSecond  float64            `json:"atSeconds"`
	Node      int                `json:"node"`
	Class     traffic.Class      `json:"class"`
	Error     string             `json:"error"`
	Cause     diagnose.Cause     `json:"cause"`
	Certainty diagnose.Certainty `json:"certainty"`
	Truth     diagnose.Cause     `json:"groundTruth"`
	Rule      string             `json:"rule,omitempty"`
	Evidence  string             `json:"evidence"`
}

// WriteJSON writes every scenario's figures, and each failure with its
// diagnosis and ground truth.
func WriteJSON(w io.Writer, results []*Result) error {
	out := struct {
		SchemaVersion string         `json:"schemaVersion"`
		Scenarios     []jsonScenario `json:"scenarios"`
	}{SchemaVersion: SchemaVersion, Scenarios: []jsonScenario{}}
	for _, r := range results {
		s := r.Scenario
		js := jsonScenario{Name: s.Name, Requests: r.Summary.Total, Failed: r.Summary.Failed(), Late: r.Summary.Late,
			ByClass: r.Summary.ByClass, Causes: r.Diagnosis.Counts, ByRule: r.Diagnosis.ByRule, Ambiguous: r.Diagnosis.Counts[diagnose.Ambiguous],
			Agreement: r.Agreement, Observers: s.Observers(), Lossless: r.Lossless(), Partial: r.Partial, RolloutSeconds: r.RolloutTook.Seconds(),
			LatencyMs: map[string]float64{}, Failures: []jsonFailure{},
			Settings: jsonSettings{Replicas: s.Replicas, MaxSurge: s.MaxSurge.String(), MaxUnavailable: s.MaxUnavailable.String(),
				PreStopSeconds: s.PreStop.Seconds(), Readiness: s.Readiness != nil, Rate: s.Rate, Mode: string(s.Mode), Seed: s.Seed}}
		for _, d := range s.Propagation {
			js.Settings.PropagationSeconds = append(js.Settings.PropagationSeconds, d.Seconds())
		}
		for _, q := range []float64{50, 90, 99, 100} {
			js.LatencyMs[fmt.Sprintf("p%g", q)] = float64(r.Summary.Quantile("", q).Microseconds()) / 1000
		}
		errs := map[int64]string{}
		for _, f := range r.Failures {
			errs[f.Seq] = f.Err
		}
		for _, a := range r.Diagnosis.Attributions {
			js.Failures = append(js.Failures, jsonFailure{Seq: a.Seq, AtSecond: a.At.Sub(r.Start).Seconds(), Node: a.Node, Class: a.Class,
				Error: errs[a.Seq], Cause: a.Cause, Certainty: a.Certainty, Truth: r.Truth[a.Seq], Rule: a.Rule, Evidence: a.Evidence})
		}
		out.Scenarios = append(out.Scenarios, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// lanes turns the timeline into one lane of phases per pod, for the HTML report.
type lane struct {
	Pod    string    `json:"pod"`
	Phases []phase   `json:"phases"`
	Marks  []float64 `json:"endpointChanges"`
}

type phase struct {
	From  float64 `json:"from"`
	To    float64 `json:"to"`
	State string  `json:"state"`
}

func lanes(events []timeline.Event, start time.Time, end float64) []lane {
	type st struct{ listening, ready, deleted, gone bool }
	state := map[string]*st{}
	at := map[string]float64{}
	var order []string
	byPod := map[string]*lane{}
	name := func(s *st) string {
		switch {
		case s.gone:
			return "gone"
		case s.deleted && s.listening:
			return "terminating"
		case s.deleted:
			return "stopped"
		case s.ready && s.listening:
			return "serving"
		case s.ready:
			return "ready-not-listening"
		case s.listening:
			return "listening"
		}
		return "starting"
	}
	for _, e := range events {
		t := e.At.Sub(start).Seconds()
		switch e.Kind {
		case timeline.NodeAdded, timeline.NodeRemoved:
			if l := byPod[e.Pod]; l != nil {
				l.Marks = append(l.Marks, t)
			}
			continue
		case timeline.PodAccepting, timeline.PodRefusing, timeline.ConnTracked:
			continue // observers' views; the lanes draw what really happened
		}
		s := state[e.Pod]
		if s == nil {
			s = &st{}
			state[e.Pod] = s
			byPod[e.Pod] = &lane{Pod: e.Pod}
			order = append(order, e.Pod)
			at[e.Pod] = t
		}
		before := name(s)
		switch e.Kind {
		case timeline.PodListening:
			s.listening = true
		case timeline.PodReady:
			s.ready = true
		case timeline.PodDeleted:
			s.deleted, s.ready = true, false
		case timeline.PodClosed:
			s.listening = false
		case timeline.PodExited:
			s.gone, s.listening = true, false
		}
		if after := name(s); after != before {
			l := byPod[e.Pod]
			l.Phases = append(l.Phases, phase{From: at[e.Pod], To: t, State: before})
			at[e.Pod] = t
		}
	}
	var out []lane
	for _, p := range order {
		l := byPod[p]
		l.Phases = append(l.Phases, phase{From: at[p], To: end, State: name(state[p])})
		out = append(out, *l)
	}
	return out
}
