package rules

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/model"
)

func pdbBlocksDrain() *Rule {
	return &Rule{
		ID: "RG402", Name: "pdb-blocks-drain", Case: Disruption, Severity: Warning,
		Summary: "A PodDisruptionBudget allows no eviction at all",
		Rollout: "Node drains and cluster upgrades hang on these pods until someone deletes them by hand, which is when traffic is lost.",
		Why: `A budget of maxUnavailable 0, or minAvailable equal to (or above) the number of replicas,
lets the eviction API evict nothing. kubectl drain then retries forever, and cluster
upgrades stall until an operator deletes the pods directly or removes the budget: the
disruption the budget was meant to prevent happens anyway, unplanned. For a workload with an
HPA, rollguard compares with the HPA's minReplicas.`,
		Fix: `Allow one disruption: maxUnavailable: 1, or minAvailable below the replica count.`,
		Example: `spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web`,
		NoFix:   "A strict budget may be deliberate, for example during a migration; loosen it by hand.",
		Subject: "PodDisruptionBudget",
		Model: func(s Settings, m *model.Model) []Finding {
			var out []Finding
			for _, p := range m.PDBs {
				if len(p.Workloads) == 0 {
					continue
				}
				var replicas int32
				var names []string
				for _, w := range p.Workloads {
					replicas += w.EffectiveReplicas()
					names = append(names, w.Kind+"/"+w.Name)
				}
				spec := p.Spec.Spec
				var msg, path string
				switch {
				case spec.MaxUnavailable != nil && model.IsZero(*spec.MaxUnavailable):
					msg, path = "maxUnavailable is 0", "spec.maxUnavailable"
				case spec.MinAvailable != nil && blocks(*spec.MinAvailable, replicas):
					msg, path = fmt.Sprintf("minAvailable %s with %d replicas", spec.MinAvailable.String(), replicas), "spec.minAvailable"
				default:
					continue
				}
				out = append(out, Finding{Object: p.Object, Path: path,
					Message: fmt.Sprintf("%s: no pod of %s can ever be evicted", msg, strings.Join(names, ", ")),
					Fix:     "set maxUnavailable: 1 (and remove minAvailable)"})
			}
			return out
		},
	}
}

// blocks reports whether minAvailable leaves no pod to evict.
func blocks(min intstr.IntOrString, replicas int32) bool {
	if pct, ok := percent(min.String()); ok {
		return pct >= 100
	}
	return min.Type == intstr.Int && replicas > 0 && min.IntVal >= replicas
}
