package rules

import (
	"github.com/rollguard/rollguard/pkg/model"
)

func singleReplica() *Rule {
	return &Rule{
		ID: "RG304", Name: "single-replica", Case: Strategy, Severity: Warning,
		Summary: "A served workload runs a single replica and no HPA",
		Rollout: "Whenever the one pod is not ready (a node drain, an eviction, a restart, an update that deletes before it creates) the Service has no endpoint at all.",
		Why: `With one replica every gap is an outage. A Deployment with maxSurge can roll one pod
safely, but a node drain, an eviction or a crash still leaves no endpoint, and a
StatefulSet always deletes its pod before recreating it. replicas defaults to 1 when it is
not written. A workload scaled by an HPA is not reported: its replica count is the HPA's.`,
		Fix: `Run at least two replicas (with a PodDisruptionBudget, see RG401), or scale with an HPA
whose minReplicas is 2 or more.`,
		Example: `spec:
  replicas: 2`,
		NoFix: "The replica count is a capacity and cost decision.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !w.Served || w.HPA != nil || w.EffectiveReplicas() != 1 {
				return nil
			}
			switch w.Kind {
			case "Deployment", "StatefulSet", "ReplicaSet", "Rollout":
			default:
				return nil
			}
			msg := "replicas is 1: the Service has no endpoint whenever this pod is not ready"
			if w.Replicas == nil {
				msg = "replicas is not set and defaults to 1: the Service has no endpoint whenever this pod is not ready"
			}
			return []Finding{{Path: "spec.replicas", Message: msg, Fix: "set replicas: 2 or more, or scale with an HPA (minReplicas >= 2)"}}
		},
	}
}
