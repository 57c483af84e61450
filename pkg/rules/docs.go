package rules

import (
	"fmt"
	"strings"
)

// Markdown renders the rule's documentation page, the one checked in under
// docs/rules/ and shown by `rollguard rules ID`.
func (r *Rule) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s\n\n", r.ID, r.Name)
	fmt.Fprintf(&b, "%s.\n\n", r.Summary)
	fmt.Fprintf(&b, "| case | severity | applies to |\n|---|---|---|\n| %s | %s | %s |\n\n", r.Case.Title(), r.Severity, r.subjectText())
	fmt.Fprintf(&b, "## What happens during a rollout\n\n%s\n\n", r.Rollout)
	fmt.Fprintf(&b, "## Why\n\n%s\n\n", r.Why)
	fmt.Fprintf(&b, "## How to fix\n\n%s\n\n", r.Fix)
	fmt.Fprintf(&b, "```yaml\n%s\n```\n\n", r.Example)
	if r.Remediate != nil {
		b.WriteString("`rollguard fix` applies this fix.\n\n")
	} else {
		fmt.Fprintf(&b, "`rollguard fix` leaves this finding to you: %s\n\n", r.NoFix)
	}
	fmt.Fprintf(&b, "## Suppress\n\nOn the object (or a workload's pod template), with a reason:\n\n"+
		"```yaml\nmetadata:\n  annotations:\n    rollguard.io/ignore: %s\n    rollguard.io/ignore-reason: \"...\"\n```\n\n"+
		"or for every object, in the config file: `disabledRules: [%s]`.\n", r.ID, r.ID)
	return b.String()
}

func (r *Rule) subjectText() string {
	switch r.Subject {
	case "":
		return "workloads"
	case "Service":
		return "Services"
	default:
		return r.Subject + "s"
	}
}

// IndexMarkdown renders the catalogue page docs/rules/README.md.
func (reg *Registry) IndexMarkdown() string {
	var b strings.Builder
	b.WriteString("# rollguard rules\n\nGenerated from the rule registry by `go run ./hack/gendocs`; do not edit.\n\n")
	b.WriteString("| ID | name | case | severity | summary |\n|---|---|---|---|---|\n")
	for _, r := range reg.All() {
		fmt.Fprintf(&b, "| [%s](%s.md) | %s | %s | %s | %s |\n", r.ID, r.ID, r.Name, r.Case.Title(), r.Severity, r.Summary)
	}
	return b.String()
}
