package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func minReadyZero() *Rule {
	return &Rule{
		ID: "RG305", Name: "min-ready-seconds-zero", Case: Strategy, Severity: Info,
		Summary: "A multi-replica served workload rolls on with minReadySeconds 0",
		Rollout: "Each new pod counts as available the instant its readiness probe first passes, so a pod that passes once and then fails has already replaced an old one, and the rollout can replace them all.",
		Why: `minReadySeconds is how long a new pod must stay ready, without a container crashing,
before the controller counts it available and moves on to the next old pod. At 0 the first
passing probe is enough: an app that answers its health check and then fails under its first
real traffic (a cold cache, a missing secret read lazily) lets the rollout continue. A few
seconds, at least the propagation budget, means each new pod has served real traffic from
every node before an old one goes. It is reported only for workloads with a readinessProbe
(without one, RG201 is the bigger problem) and at least two replicas.`,
		Fix: `Set minReadySeconds to at least the propagation budget.`,
		Example: `spec:
  minReadySeconds: 5`,
		Remediate: func(o FixOptions, f Finding) Remedy {
			return Remedy{Ops: []Op{{Path: "spec.minReadySeconds", Value: o.BudgetSeconds()}}}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !rollingKind(w) || w.MinReadySeconds > 0 {
				return nil
			}
			served := servedContainers(w)
			if len(served) == 0 || (w.Kind != "DaemonSet" && w.EffectiveReplicas() < 2) {
				return nil
			}
			for _, c := range served {
				if c.Spec.ReadinessProbe == nil {
					return nil
				}
			}
			return []Finding{{Path: "spec.minReadySeconds",
				Message: "minReadySeconds is 0: a new pod is trusted after its first passing readiness probe",
				Fix:     fmt.Sprintf("set minReadySeconds: %d", s.BudgetSeconds())}}
		},
	}
}
