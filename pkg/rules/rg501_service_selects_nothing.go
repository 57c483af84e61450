package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/rollguard/rollguard/pkg/model"
)

func serviceSelectsNothing() *Rule {
	return &Rule{
		ID: "RG501", Name: "service-selects-nothing", Case: Service, Severity: Warning,
		Summary: "A Service's selector matches no workload's pods",
		Rollout: "The Service has no endpoints: every connection to it is refused (or times out), rollout or not.",
		Why: `A Service sends traffic to the ready pods its selector matches in its namespace. A selector
that matches no pod template (a label changed on one side only, a typo) leaves it without
endpoints; kube-proxy then rejects its connections. rollguard reports it only when the input
holds workloads in that namespace, and not for Services without a selector, whose endpoints
are managed by hand.`,
		Fix: `Make the selector match the labels of the pod template that should serve it.`,
		Example: `spec:
  selector:
    app: web     # must match spec.template.metadata.labels of the workload`,
		NoFix:   "The pods the Service was meant for cannot be told from the selector.",
		Subject: "Service",
		Model: func(s Settings, m *model.Model) []Finding {
			has := namespacesWithWorkloads(m)
			var out []Finding
			for _, svc := range m.Services {
				if len(svc.Workloads) > 0 || len(svc.Spec.Spec.Selector) == 0 || !has[svc.Namespace] {
					continue
				}
				out = append(out, Finding{Object: svc.Object, Path: "spec.selector",
					Message: fmt.Sprintf("selector %s matches no workload's pods in namespace %s", labels.Set(svc.Spec.Spec.Selector), svc.Namespace),
					Fix:     "use the labels of the pod template that should serve this Service"})
			}
			return out
		},
	}
}
