package rules

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/model"
)

func allUnavailable() *Rule {
	return &Rule{
		ID: "RG302", Name: "max-unavailable-all", Case: Strategy, Severity: Error,
		Summary: "maxUnavailable lets a rollout take down every replica at once",
		Rollout: "The controller may delete all old pods before any new pod is ready, leaving the Service with no endpoints.",
		Why: `The Deployment controller resolves maxUnavailable against the replica count, rounding a
percentage down, and may take that many pods away at once. When the result reaches the
replica count (maxUnavailable 100%, or an absolute value at least the replica count) a
rollout can leave no ready pod at all. For a workload scaled by an HPA, rollguard uses the
HPA's minReplicas, its lowest point. A StatefulSet honours
updateStrategy.rollingUpdate.maxUnavailable only with the MaxUnavailableStatefulSet feature,
on by default from Kubernetes 1.37 (older clusters replace one pod at a time whatever it
says).`,
		Fix: `Keep maxUnavailable below the replica count (0 with a maxSurge of 1 or 25% is the safe
default for most services), so that at least one ready pod serves throughout.`,
		Example: `strategy:
  rollingUpdate:
    maxSurge: 25%
    maxUnavailable: 0`,
		Remediate: func(o FixOptions, f Finding) Remedy {
			w := f.Workload
			st := w.Strategy
			if w.Kind == "DaemonSet" || w.Kind == "StatefulSet" {
				return Remedy{Ops: []Op{{Path: st.Path + ".maxUnavailable", Value: 1}},
					Note: "maxUnavailable 1: one pod is replaced at a time"}
			}
			r := w.EffectiveReplicas()
			ops := []Op{{Path: st.Path + ".maxUnavailable", Value: safeUnavailable(r)}}
			note := fmt.Sprintf("maxUnavailable %d keeps at least %d of %d replicas ready", safeUnavailable(r), r-safeUnavailable(r), r)
			if surge, _, _, err := model.Fenceposts(st.MaxSurge, intstr.FromInt32(safeUnavailable(r)), r); err == nil && surge == 0 {
				ops = append(ops, Op{Path: st.Path + ".maxSurge", Value: 1})
				note += "; maxSurge 1 lets the rollout add a pod first, as it could not otherwise move"
			}
			return Remedy{Ops: ops, Note: note}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			if !w.Served || !rollingKind(w) {
				return nil
			}
			st := w.Strategy
			if st.Type != "RollingUpdate" && st.Type != "Canary" {
				return nil
			}
			if w.Kind == "DaemonSet" {
				// The node count is not in the manifest; only "all of them" is certain.
				if pct, ok := percent(st.MaxUnavailable.String()); ok && pct >= 100 {
					return []Finding{{Path: st.Path + ".maxUnavailable",
						Message: "maxUnavailable " + st.MaxUnavailable.String() + " lets the rollout stop the pod on every node at once",
						Fix:     "set maxUnavailable: 1, or maxSurge: 1 with maxUnavailable: 0"}}
				}
				return nil
			}
			r := w.EffectiveReplicas()
			if r < 2 && w.Kind == "StatefulSet" {
				return nil // a single replica cannot roll without a gap; RG304 says so
			}
			_, unavail, forced, err := model.Fenceposts(st.MaxSurge, st.MaxUnavailable, r)
			if err != nil || forced || r == 0 || unavail < r {
				return nil // forced: RG303's finding
			}
			fix := fmt.Sprintf("set maxUnavailable: %d (with maxSurge 1 or more)", safeUnavailable(r))
			if w.Kind == "StatefulSet" {
				// A StatefulSet has no surge: it replaces pods by deleting first.
				fix = "set updateStrategy.rollingUpdate.maxUnavailable: 1 (a StatefulSet cannot surge)"
			}
			return []Finding{{
				Path:    st.Path + ".maxUnavailable",
				Message: fmt.Sprintf("maxUnavailable %s resolves to %d of %d replicas: the rollout may stop them all at once", st.MaxUnavailable.String(), unavail, r),
				Fix:     fix,
			}}
		},
	}
}

// safeUnavailable keeps at least one ready pod, and a quarter of the
// replicas for larger workloads: 0 below 4 replicas, then 25% rounded down.
func safeUnavailable(replicas int32) int32 { return replicas / 4 }

func percent(s string) (int, bool) {
	if !strings.HasSuffix(s, "%") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	return n, err == nil
}
