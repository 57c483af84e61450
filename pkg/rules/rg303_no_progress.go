package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func noProgress() *Rule {
	return &Rule{
		ID: "RG303", Name: "surge-and-unavailable-zero", Case: Strategy, Severity: Error,
		Summary: "maxSurge and maxUnavailable are both zero",
		Rollout: "The rollout cannot add a pod nor remove one: the API rejects the manifest, or, when percentages round to zero, the controller removes a pod before its replacement is ready.",
		Why: `A rolling update needs room to move: either an extra pod (maxSurge) or a missing one
(maxUnavailable). Literal zeros for both are rejected by the API server. Percentages that
both round to zero (maxSurge rounds up, so only 0% does; maxUnavailable rounds down, so
10% of 5 replicas does) are accepted, and the Deployment controller then quietly allows one
unavailable pod: every step deletes an old pod before the new one is ready, the opposite of
what the zero was meant to say.`,
		Fix: `Allow a surge: maxSurge 1 (or 25%) with maxUnavailable 0 replaces pods without ever going
below the desired count.`,
		Example: `strategy:
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0`,
		Remediate: func(o FixOptions, f Finding) Remedy {
			return Remedy{Ops: []Op{{Path: f.Workload.Strategy.Path + ".maxSurge", Value: 1}},
				Note: "maxSurge 1: a new pod is added and ready before an old one goes"}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			st := w.Strategy
			if w.Kind != "Deployment" && !(w.Kind == "Rollout" && st.Type == "Canary") {
				return nil
			}
			if st.Type != "RollingUpdate" && st.Type != "Canary" {
				return nil
			}
			if model.IsZero(st.MaxSurge) && model.IsZero(st.MaxUnavailable) {
				return []Finding{{Path: st.Path,
					Message: "maxSurge and maxUnavailable are both 0: the API server rejects this strategy",
					Fix:     "set maxSurge: 1"}}
			}
			r := w.EffectiveReplicas()
			if r == 0 {
				return nil
			}
			if _, _, forced, err := model.Fenceposts(st.MaxSurge, st.MaxUnavailable, r); err == nil && forced {
				return []Finding{{Path: st.Path,
					Message: fmt.Sprintf("maxSurge %s and maxUnavailable %s both round to 0 for %d replicas, so the controller removes a pod before its successor is ready",
						st.MaxSurge.String(), st.MaxUnavailable.String(), r),
					Fix: "set maxSurge: 1"}}
			}
			return nil
		},
	}
}
