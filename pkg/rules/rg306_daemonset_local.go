package rules

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/pkg/model"
)

func daemonSetLocal() *Rule {
	return &Rule{
		ID: "RG306", Name: "daemonset-local-no-surge", Case: Strategy, Severity: Error,
		Summary: "A DaemonSet behind a Service with traffic policy Local rolls without surge",
		Rollout: "On each node the only local pod is stopped before its replacement starts, and that node drops the Service's traffic until the new pod is ready.",
		Why: `With externalTrafficPolicy: Local (or internalTrafficPolicy: Local) a node sends the
Service's traffic only to pods on that same node. A DaemonSet runs one pod per node and by
default updates with maxSurge 0: it deletes the pod, then creates its successor. For that
whole window the node has no local endpoint and the traffic it receives is dropped (load
balancers notice only after their health checks fail). With maxSurge 1 and maxUnavailable 0
the new pod starts beside the old one first.`,
		Fix: `Set updateStrategy.rollingUpdate.maxSurge to 1 and maxUnavailable to 0 (DaemonSet surge is
GA since Kubernetes 1.25), and give the pods a preStop delay.`,
		Example: `updateStrategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0`,
		NoFix: "DaemonSet surge needs room for a second pod on every node and cannot work with a hostPort; set it by hand.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			if w.Kind != "DaemonSet" || !w.Served || w.Strategy.Type != "RollingUpdate" || !model.IsZero(w.Strategy.MaxSurge) {
				return nil
			}
			for _, svc := range w.Services {
				spec := svc.Spec.Spec
				local := ""
				switch {
				case spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
					(spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeNodePort):
					local = "externalTrafficPolicy"
				case spec.InternalTrafficPolicy != nil && *spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal:
					local = "internalTrafficPolicy"
				}
				if local != "" {
					return []Finding{{Path: w.Strategy.Path,
						Message: fmt.Sprintf("Service %s has %s Local and the DaemonSet rolls with maxSurge 0: each node loses its only local endpoint during the update", svc.Object.Name, local),
						Fix:     "set updateStrategy.rollingUpdate.maxSurge: 1 and maxUnavailable: 0"}}
				}
			}
			return nil
		},
	}
}
