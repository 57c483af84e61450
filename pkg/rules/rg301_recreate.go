package rules

import (
	"github.com/rollguard/rollguard/pkg/model"
)

func recreateStrategy() *Rule {
	return &Rule{
		ID: "RG301", Name: "recreate-strategy", Case: Strategy, Severity: Error,
		Summary: "A served Deployment uses the Recreate strategy",
		Rollout: "Every old pod is deleted before any new pod starts, so the Service has no endpoints and every request fails until the new pods are ready.",
		Why: `Recreate scales the old ReplicaSet to zero, waits for its pods to terminate, and only then
creates the new ones. For a Deployment behind a Service that is a planned outage on every
update, whatever its probes and hooks. It is sometimes chosen on purpose, for an app that
must never run two versions at once or that holds a ReadWriteOnce volume; then suppress this
rule on the workload with a reason.`,
		Fix: `Use the RollingUpdate strategy. If Recreate is there for a single-writer volume, consider a
StatefulSet, or accept the outage and suppress the finding with rollguard.io/ignore and
rollguard.io/ignore-reason.`,
		Example: `strategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0`,
		NoFix: "Recreate may be there on purpose, for a single-writer volume or an app that must not run two versions.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !w.Served || w.Kind != "Deployment" || w.Strategy.Type != "Recreate" {
				return nil
			}
			return []Finding{{
				Path:    "spec.strategy.type",
				Message: "strategy Recreate stops every pod before starting new ones",
				Fix:     "use strategy RollingUpdate (maxSurge 1, maxUnavailable 0), unless Recreate guards a single-writer volume",
			}}
		},
	}
}
