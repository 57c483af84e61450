package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func pdbMissing() *Rule {
	return &Rule{
		ID: "RG401", Name: "pdb-missing", Case: Disruption, Severity: Warning,
		Summary: "A served workload with several replicas has no PodDisruptionBudget",
		Rollout: "A node drain or cluster upgrade may evict all its pods at once, independent of the rollout strategy, and the Service loses every endpoint.",
		Why: `The rollout strategy only limits the Deployment controller. Evictions (kubectl drain, node
upgrades, the cluster autoscaler) go through the eviction API, which consults
PodDisruptionBudgets and nothing else: without one, a drain of the nodes that host the
workload evicts every replica as fast as it can. DaemonSets are not reported: drains skip
their pods.`,
		Fix: `Add a PodDisruptionBudget that selects the workload's pods with maxUnavailable: 1 (or a
percentage), which always lets a drain make progress.`,
		Example: `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: web`,
		NoFix: "rollguard edits existing objects and does not add new ones to your files; the example shows the budget to add.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !w.Served || len(w.PDBs) > 0 || w.Kind == "DaemonSet" || !w.Rolls() || w.EffectiveReplicas() < 2 {
				return nil
			}
			return []Finding{{Path: "metadata",
				Message: fmt.Sprintf("%d replicas and no PodDisruptionBudget selects its pods", w.EffectiveReplicas()),
				Fix:     "add a PodDisruptionBudget with maxUnavailable: 1 and the pod template's labels as selector"}}
		},
	}
}
