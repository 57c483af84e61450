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
HPA, rollguard compares with the HPA's minReplicas. A budget over a DaemonSet's pods (or
bare pods) with maxUnavailable or a percentage minAvailable allows nothing at all: the
disruption controller resolves those against the controller's scale subresource, which a
DaemonSet does not have, and when that fails it sets the allowed disruptions to 0. Use an
integer minAvailable for DaemonSets.`,
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
				countKnown, hpa := true, false
				for _, w := range p.Workloads {
					if w.Kind == "DaemonSet" || w.Kind == "Pod" {
						countKnown = false // one pod per node, or a bare pod: no scale to read
					}
					hpa = hpa || w.HPA != nil
					replicas += w.EffectiveReplicas()
					names = append(names, w.Kind+"/"+w.Name)
				}
				spec := p.Spec.Spec
				scale := fmt.Sprintf("%d replicas", replicas)
				if hpa {
					scale += " (an HPA's minReplicas)"
				}
				var msg, path string
				unscalable := ""
				for _, w := range p.Workloads {
					if w.Kind == "DaemonSet" || w.Kind == "Pod" {
						unscalable = w.Kind + "/" + w.Name
						break
					}
				}
				switch {
				case unscalable != "" && (validBudget(spec.MaxUnavailable) || spec.MaxUnavailable == nil && validBudget(spec.MinAvailable) && spec.MinAvailable.Type == intstr.String):
					// The disruption controller scales maxUnavailable and
					// percentages by the controller's scale subresource, which a
					// DaemonSet lacks (a bare pod has no controller): its sync
					// fails and it allows no disruption (failSafe).
					field, val := "maxUnavailable", spec.MaxUnavailable
					if val == nil {
						field, val = "minAvailable", spec.MinAvailable
					}
					msg = fmt.Sprintf("%s %s selects %s, which has no scale for the disruption controller to resolve it against, so it allows no eviction",
						field, val.String(), unscalable)
					path = "spec." + field
				case spec.MaxUnavailable != nil:
					if n, ok := scaledUp(*spec.MaxUnavailable, replicas, countKnown); ok && n == 0 {
						msg, path = fmt.Sprintf("maxUnavailable %s of %s allows 0 evictions", spec.MaxUnavailable.String(), scale), "spec.maxUnavailable"
					}
				case spec.MinAvailable != nil && countKnown && replicas > 0:
					if n, ok := scaledUp(*spec.MinAvailable, replicas, true); ok && n >= replicas {
						msg, path = fmt.Sprintf("minAvailable %s of %s comes to %d", spec.MinAvailable.String(), scale, n), "spec.minAvailable"
					}
				case spec.MinAvailable != nil:
					if pct, ok := percent(spec.MinAvailable.String()); ok && pct >= 100 {
						msg, path = "minAvailable "+spec.MinAvailable.String(), "spec.minAvailable"
					}
				}
				if msg == "" {
					continue
				}
				if unscalable == "" {
					msg = fmt.Sprintf("%s: at that count no pod of %s can be evicted", msg, strings.Join(names, ", "))
				}
				out = append(out, Finding{Object: p.Object, Path: path,
					Message: msg,
					Fix:     fixFor(unscalable)})
			}
			return out
		},
	}
}

// scaledUp resolves a budget's number or percentage against the replica
// count as the disruption controller does (pkg/controller/disruption:
// GetScaledValueFromIntOrPercent rounding up, for minAvailable and
// maxUnavailable alike). Without a known count only a literal number, 0%
// and 100% can be resolved.
func scaledUp(v intstr.IntOrString, replicas int32, countKnown bool) (int32, bool) {
	if v.Type == intstr.Int {
		return v.IntVal, true
	}
	if !countKnown {
		if pct, ok := percent(v.StrVal); ok && (pct == 0 || pct >= 100) {
			if pct == 0 {
				return 0, true
			}
			return replicas, replicas > 0
		}
		return 0, false
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, int(replicas), true)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}

func fixFor(unscalable string) string {
	if unscalable != "" {
		return "use an integer minAvailable below the number of nodes " + unscalable + " runs on"
	}
	return "set maxUnavailable: 1 (and remove minAvailable)"
}

// validBudget reports whether a budget value is one the API server accepts:
// a number, or a percentage.
func validBudget(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	_, pct := percent(v.StrVal)
	return v.Type == intstr.Int || pct
}
