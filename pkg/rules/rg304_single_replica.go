package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func singleReplica() *Rule {
	return &Rule{
		ID: "RG304", Name: "single-replica", Case: Strategy, Severity: Warning,
		Summary: "A served workload runs a single replica, or scales down to one",
		Rollout: "Whenever the one pod is not ready (a node drain, an eviction, a restart, an update that deletes before it creates) the Service has no endpoint at all.",
		Why: `With one replica every gap is an outage. A Deployment with maxSurge can roll one pod
safely, but a node drain, an eviction or a crash still leaves no endpoint, and a
StatefulSet always deletes its pod before recreating it. replicas defaults to 1 when it is
not written. A workload scaled by an HPA is judged at the HPA's minReplicas, which defaults to
1. A workload whose Services all select other workloads' pods too (several versions behind
one Service) is not reported: the Service keeps those endpoints.`,
		Fix: `Run at least two replicas (with a PodDisruptionBudget, see RG401), or scale with an HPA
whose minReplicas is 2 or more.`,
		Example: `spec:
  replicas: 2`,
		NoFix: "The replica count is a capacity and cost decision.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !w.Served || w.EffectiveReplicas() != 1 {
				return nil
			}
			switch w.Kind {
			case "Deployment", "StatefulSet", "ReplicaSet", "Rollout":
			default:
				return nil
			}
			if sharedEndpoints(w) {
				return nil // every Service of it has other workloads' pods too
			}
			msg := "replicas is 1: the Service has no endpoint whenever this pod is not ready"
			fix := "set replicas: 2 or more, or scale with an HPA (minReplicas >= 2)"
			switch {
			case w.HPA != nil:
				msg = fmt.Sprintf("HPA %s scales it down to minReplicas 1 (the default when unset): then the Service has no endpoint whenever this pod is not ready", w.HPA.Object.Name)
				fix = fmt.Sprintf("set minReplicas: 2 or more on HPA %s", w.HPA.Object.Name)
			case w.Replicas == nil:
				msg = "replicas is not set and defaults to 1: the Service has no endpoint whenever this pod is not ready"
			}
			return []Finding{{Path: "spec.replicas", Message: msg, Fix: fix}}
		},
	}
}

// sharedEndpoints reports whether every Service that selects the workload
// also selects other workloads' pods (istio's reviews-v1, -v2 and -v3 behind
// one Service), so that it keeps an endpoint when this workload has none.
func sharedEndpoints(w *model.Workload) bool {
	if len(w.Services) == 0 {
		return false
	}
	for _, s := range w.Services {
		others := int32(0)
		for _, o := range s.Workloads {
			if o != w && !o.Batch {
				others += max(o.EffectiveReplicas(), 1)
			}
		}
		if others == 0 {
			return false
		}
	}
	return true
}
