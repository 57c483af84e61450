// Package rules implements rollguard's checks: a registry of rules, each
// with a stable ID, the case of connection loss it causes, a severity, its
// documentation and a check over the model; and the engine that runs them,
// applies configuration and suppressions, and orders the findings.
package rules

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

// Severity orders findings; --fail-on picks the lowest that fails a run.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota + 1
	Warning
	Error
)

var severityNames = map[Severity]string{Info: "info", Warning: "warning", Error: "error"}

func (s Severity) String() string { return severityNames[s] }

// ParseSeverity parses "error", "warning" or "info".
func ParseSeverity(name string) (Severity, error) {
	for s, n := range severityNames {
		if strings.EqualFold(name, n) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want error, warning or info)", name)
}

// Case is the kind of loss a rule is about.
type Case string

// The cases. Case1 and Case2 are the two windows that lose connections;
// the others make a rollout or a drain lose capacity or traffic.
const (
	Case1      Case = "case1"      // old pod stops listening while nodes still send it traffic
	Case2      Case = "case2"      // new pod gets traffic before it listens
	Strategy   Case = "strategy"   // the update strategy removes capacity
	Disruption Case = "disruption" // drains and evictions
	Service    Case = "service"    // the Service itself sends traffic nowhere
)

// Title renders a case as the docs and text output name it.
func (c Case) Title() string {
	switch c {
	case Case1:
		return "Case 1"
	case Case2:
		return "Case 2"
	default:
		return string(c)
	}
}

// Settings are the numbers the rules measure against.
type Settings struct {
	// PropagationBudget is how long an endpoint change takes to reach every
	// node's kube-proxy.
	PropagationBudget time.Duration
	// DrainAllowance is the time an app needs after SIGTERM to finish
	// in-flight requests.
	DrainAllowance time.Duration
}

// DefaultSettings are used when nothing else is configured.
func DefaultSettings() Settings {
	return Settings{PropagationBudget: 5 * time.Second, DrainAllowance: 5 * time.Second}
}

// BudgetSeconds is the propagation budget in whole seconds, rounded up, as
// a preStop sleep must be written.
func (s Settings) BudgetSeconds() int64 { return ceilSeconds(s.PropagationBudget) }

func ceilSeconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }

// Rule is one check.
type Rule struct {
	// ID is stable forever ("RG101"); Name is a readable alias.
	ID, Name string
	Case     Case
	Severity Severity
	// Summary is the catalogue's one line; Rollout says in one sentence
	// what happens during a rollout when the rule fires.
	Summary, Rollout string
	// Why explains the mechanism; Fix says how to fix it; Example shows the
	// fixed YAML. All three feed the generated docs.
	Why, Fix, Example string

	// Exactly one of Workload and Model is set. A Model rule names the
	// kind of object it judges in Subject ("Service", "PodDisruptionBudget").
	Workload func(s Settings, w *model.Workload) []Finding
	Model    func(s Settings, m *model.Model) []Finding
	Subject  string

	// Exactly one of Remediate and NoFix is set: the safe automatic fix for
	// a finding (which may still decline, with a reason), or why the rule
	// has none.
	Remediate func(o FixOptions, f Finding) Remedy
	NoFix     string
}

// Finding is one rule firing on one object.
type Finding struct {
	Rule     *Rule
	Severity Severity
	// Object is what the finding is about: a workload, Service or PDB.
	Object *manifest.Object
	// Workload is set when Object is a workload.
	Workload *model.Workload
	// Container is set for findings about one container.
	Container string
	// Path is the manifest field the finding is about (or where the
	// missing field belongs); Source is its file and line.
	Path   string
	Source manifest.Source
	// Message says what is wrong here; Fix what to change here.
	Message, Fix string
	// Lowered, when set, says why the finding is reported as info: what
	// the rule guards against cannot happen to these callers (only
	// scrapers use the port, an operator may own the pods).
	Lowered string
	// Suppressed findings are reported apart and never fail a run.
	Suppressed     bool
	SuppressReason string
}

func (r *Rule) validate() error {
	var missing []string
	for name, v := range map[string]string{"ID": r.ID, "Name": r.Name, "Summary": r.Summary,
		"Rollout": r.Rollout, "Why": r.Why, "Fix": r.Fix, "Example": r.Example, "Case": string(r.Case)} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("rule %q: missing %s", r.ID, strings.Join(missing, ", "))
	}
	if (r.Workload == nil) == (r.Model == nil) {
		return fmt.Errorf("rule %s: set exactly one of Workload and Model", r.ID)
	}
	if (r.Remediate == nil) == (strings.TrimSpace(r.NoFix) == "") {
		return fmt.Errorf("rule %s: set exactly one of Remediate and NoFix", r.ID)
	}
	if (r.Model != nil) != (r.Subject != "") {
		return fmt.Errorf("rule %s: a Model rule, and only a Model rule, names its Subject", r.ID)
	}
	if severityNames[r.Severity] == "" {
		return fmt.Errorf("rule %s: no severity", r.ID)
	}
	return nil
}
