package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func pdbSelectsNothing() *Rule {
	return &Rule{
		ID: "RG403", Name: "pdb-selects-nothing", Case: Disruption, Severity: Warning,
		Summary: "A PodDisruptionBudget selects no workload's pods",
		Rollout: "The pods it was written for have no budget, so a drain may evict them all at once.",
		Why: `A budget protects only pods its selector matches, in its own namespace. A selector that
matches no pod template (a renamed label, a budget in the wrong namespace) protects nothing,
silently. rollguard reports it only when the input holds workloads in that namespace, so
auditing budgets on their own stays quiet. As for RG501, an operator's object in the
namespace that may run the pods makes it info, and audit --cluster -l does not report it.`,
		Fix: `Make the selector match the pod template's labels of the workload it guards, in the same
namespace.`,
		Example: `spec:
  selector:
    matchLabels:
      app: web     # the same labels as spec.template.metadata.labels`,
		NoFix:   "The workload the budget was meant for cannot be told from the selector.",
		Subject: "PodDisruptionBudget",
		Model: func(s Settings, m *model.Model) []Finding {
			has := namespacesWithWorkloads(m)
			var out []Finding
			for _, p := range m.PDBs {
				if m.Partial || len(p.Workloads) > 0 || !has[p.Namespace] {
					continue
				}
				var sel map[string]string
				if p.Spec.Spec.Selector != nil {
					sel = p.Spec.Spec.Selector.MatchLabels
				}
				out = append(out, Finding{Object: p.Object, Path: "spec.selector",
					Message: fmt.Sprintf("selector matches no workload's pods in namespace %s", p.Namespace),
					Fix:     "use the labels of the pod template it should guard",
					Lowered: operatorMayOwn(m, p.Namespace, sel)})
			}
			return out
		},
	}
}

func namespacesWithWorkloads(m *model.Model) map[string]bool {
	has := map[string]bool{}
	for _, w := range m.Workloads {
		has[w.Namespace] = true
	}
	return has
}
