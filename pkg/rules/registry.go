package rules

import (
	"fmt"
	"iter"
	"runtime"
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/pkg/model"
)

// Annotations that suppress findings on the object that carries them (for a
// workload, also on its pod template).
const (
	// IgnoreAnnotation lists rule IDs or names, comma-separated, or "all".
	IgnoreAnnotation = "rollguard.io/ignore"
	// IgnoreReasonAnnotation says why; it is reported with the suppressed findings.
	IgnoreReasonAnnotation = "rollguard.io/ignore-reason"
)

// Registry holds rules by ID.
type Registry struct {
	byID   map[string]*Rule
	byName map[string]*Rule
	sorted []*Rule
}

// NewRegistry registers rules, refusing an invalid rule and a duplicate ID
// or name.
func NewRegistry(rs ...*Rule) (*Registry, error) {
	reg := &Registry{byID: map[string]*Rule{}, byName: map[string]*Rule{}}
	for _, r := range rs {
		if err := r.validate(); err != nil {
			return nil, err
		}
		if _, dup := reg.byID[r.ID]; dup {
			return nil, fmt.Errorf("rule ID %s registered twice", r.ID)
		}
		if _, dup := reg.byName[r.Name]; dup {
			return nil, fmt.Errorf("rule name %s registered twice", r.Name)
		}
		reg.byID[r.ID], reg.byName[r.Name] = r, r
		reg.sorted = append(reg.sorted, r)
	}
	sort.Slice(reg.sorted, func(i, j int) bool { return reg.sorted[i].ID < reg.sorted[j].ID })
	return reg, nil
}

// All returns the rules sorted by ID.
func (r *Registry) All() []*Rule { return r.sorted }

// Lookup finds a rule by ID or name, case-insensitively.
func (r *Registry) Lookup(key string) *Rule {
	if rule := r.byID[strings.ToUpper(key)]; rule != nil {
		return rule
	}
	return r.byName[strings.ToLower(key)]
}

// Options select and tune rules for one run.
type Options struct {
	Settings Settings
	// Disabled rules do not run. Only, when not empty, runs only these.
	Disabled, Only map[*Rule]bool
	// Severity overrides a rule's default severity.
	Severity map[*Rule]Severity
}

// Report is the outcome of running the rules over a model.
type Report struct {
	Findings   []Finding
	Suppressed []Finding
	// Warnings are problems with the run itself, such as an ignore
	// annotation naming no known rule.
	Warnings []string
	Rules    []*Rule // the rules that ran
}

// Run checks a model.
func (r *Registry) Run(m *model.Model, opts Options) *Report {
	rep := &Report{}
	var enabled, perWorkload []*Rule
	for _, rule := range r.sorted {
		if opts.Disabled[rule] || (len(opts.Only) > 0 && !opts.Only[rule]) {
			continue
		}
		enabled = append(enabled, rule)
		if rule.Workload != nil {
			perWorkload = append(perWorkload, rule)
		}
	}
	cores := max(1, min(runtime.GOMAXPROCS(0), len(m.Workloads)/minWorkloadsPerCore))
	runs := checkWorkloads(perWorkload, m.Workloads, opts.Settings, cores)
	found := make([][][]Finding, len(enabled)) // by rule, then by run of workloads
	total := 0
	checked := 0 // the workload rules done
	for i, rule := range enabled {
		if rule.Workload != nil {
			for _, run := range runs {
				found[i] = append(found[i], run[checked])
				total += len(run[checked])
			}
			checked++
		} else {
			found[i] = [][]Finding{rule.Model(opts.Settings, m)}
			total += len(found[i][0])
		}
	}
	if total > 0 {
		rep.Findings = make([]Finding, 0, total) // at most this many
	}
	for i, rule := range enabled {
		rep.Rules = append(rep.Rules, rule)
		for f := range each(found[i]) {
			f.Rule = rule
			f.Severity = rule.Severity
			if s, ok := opts.Severity[rule]; ok {
				f.Severity = s
			}
			if f.Lowered == "" {
				f.Lowered = lowered(rule, f)
			}
			if f.Lowered != "" {
				f.Severity = Info
				f.Message += "; info only: " + f.Lowered
			}
			f.Source = f.Object.At(f.Path)
			if reason, ok := r.suppressed(rule, f, rep); ok {
				f.Suppressed, f.SuppressReason = true, reason
				rep.Suppressed = append(rep.Suppressed, f)
				continue
			}
			rep.Findings = append(rep.Findings, f)
		}
	}
	sortFindings(rep.Findings)
	sortFindings(rep.Suppressed)
	return rep
}

// checkWorkloads runs each workload rule on every workload. Those checks
// are most of a run's work, and they only read the model, except for the
// shutdown reading a workload caches for its own containers
// (Workload.Shutdown); so the workloads are split into n runs checked in
// parallel, every rule of one workload on the same goroutine.
// It returns the findings by run of workloads, then by rule: a rule's
// findings, run after run, are in workload order, as checking the
// workloads one after the other gives them.
func checkWorkloads(rules []*Rule, ws []*model.Workload, s Settings, n int) [][][]Finding {
	parts := make([][][]Finding, n) // by run of workloads, then by rule
	var wg sync.WaitGroup
	for c := range n {
		run := ws[c*len(ws)/n : (c+1)*len(ws)/n]
		wg.Go(func() {
			out := make([][]Finding, len(rules))
			for i, rule := range rules {
				for _, w := range run {
					for _, f := range rule.Workload(s, w) {
						f.Workload, f.Object = w, w.Object
						out[i] = append(out[i], f)
					}
				}
			}
			parts[c] = out
		})
	}
	wg.Wait()
	return parts
}

// each yields the findings of every part in turn.
func each(parts [][]Finding) iter.Seq[Finding] {
	return func(yield func(Finding) bool) {
		for _, p := range parts {
			for _, f := range p {
				if !yield(f) {
					return
				}
			}
		}
	}
}

// minWorkloadsPerCore keeps a small audit on one goroutine.
const minWorkloadsPerCore = 256

// suppressed looks for an ignore annotation naming the rule on the
// finding's object, or on the pod template of a workload.
func (r *Registry) suppressed(rule *Rule, f Finding, rep *Report) (string, bool) {
	metas := []*metav1.ObjectMeta{objectMeta(f.Object.Value)}
	if f.Workload != nil {
		metas = append(metas, &f.Workload.Template.ObjectMeta)
	}
	for _, meta := range metas {
		if meta == nil {
			continue
		}
		val, ok := meta.Annotations[IgnoreAnnotation]
		if !ok {
			continue
		}
		for _, key := range strings.Split(val, ",") {
			key = strings.TrimSpace(key)
			if key == "" {
				continue
			}
			match := strings.EqualFold(key, "all") || r.Lookup(key) == rule
			if !match && !strings.EqualFold(key, "all") && r.Lookup(key) == nil {
				w := fmt.Sprintf("%s: annotation %s names unknown rule %q", f.Object.Ref(), IgnoreAnnotation, key)
				if !contains(rep.Warnings, w) {
					rep.Warnings = append(rep.Warnings, w)
				}
			}
			if match {
				reason := meta.Annotations[IgnoreReasonAnnotation]
				if reason == "" {
					reason = "annotation " + IgnoreAnnotation
				}
				return reason, true
			}
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// objectMeta returns the metadata of any typed object.
func objectMeta(v any) *metav1.ObjectMeta {
	if o, ok := v.(metav1.ObjectMetaAccessor); ok {
		if m, ok := o.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m
		}
	}
	return nil
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if a.Object.Source.File != b.Object.Source.File {
			return a.Object.Source.File < b.Object.Source.File
		}
		if a.Object.Source.Line != b.Object.Source.Line {
			return a.Object.Source.Line < b.Object.Source.Line
		}
		if a.Object != b.Object && a.Object.Ref() != b.Object.Ref() {
			return a.Object.Ref() < b.Object.Ref()
		}
		if a.Rule.ID != b.Rule.ID {
			return a.Rule.ID < b.Rule.ID
		}
		return a.Container < b.Container
	})
}

// lowered says why a workload finding cannot cost users' connections: the
// ports it is about are only scraped (Prometheus dials pod addresses, not
// the Service), or readiness does not gate the Service's endpoints.
func lowered(rule *Rule, f Finding) string {
	w := f.Workload
	if w == nil {
		return ""
	}
	scraped := func(why string) string {
		return why + ": scrapers reach pod addresses directly, not through kube-proxy"
	}
	switch rule.Case {
	case Case1, Case2:
		c := containerOf(f)
		if c == nil {
			if why := w.TelemetryOnly(); why != "" {
				return scraped(why)
			}
			return ""
		}
		if why := c.TelemetryOnly(); why != "" {
			return scraped(why)
		}
		if rule.Case == Case1 && !sharedEndpoints(w) && alone(w) {
			return "the rollout leaves no other pod serving while this one stops (RG304, RG301): that gap is the outage, which a preStop delay does not close"
		}
		if rule.Case == Case2 && publishesNotReady(c) {
			return "its Services set publishNotReadyAddresses, so readiness does not decide when the pod joins their endpoints"
		}
	case Strategy, Disruption:
		if why := w.TelemetryOnly(); why != "" {
			return scraped(why)
		}
	}
	return ""
}

// publishesNotReady reports whether every Service that reaches the
// container publishes not-ready addresses: the EndpointSlice controller then
// marks its pods ready whatever their probes say.
func publishesNotReady(c *model.Container) bool {
	for _, sp := range c.Served {
		if sp.Service == nil || !sp.Service.Spec.Spec.PublishNotReadyAddresses {
			return false
		}
	}
	return len(c.Served) > 0
}

// alone reports whether the workload's rollout stops its pod with no other
// pod of it serving: Recreate, or a StatefulSet of one replica, which
// deletes its pod and waits for it to be gone before creating its
// successor. (A Deployment of one replica creates the successor at once,
// and kube-proxy keeps sending to the terminating pod while it serves and
// nothing else is ready, so there a preStop delay does close the gap.)
func alone(w *model.Workload) bool {
	if w.Strategy.Type == "Recreate" {
		return true
	}
	return w.Kind == "StatefulSet" && w.HPA == nil && (w.Replicas == nil || *w.Replicas == 1)
}
