package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func serviceTargetPortUnresolved() *Rule {
	return &Rule{
		ID: "RG502", Name: "service-target-port-unresolved", Case: Service, Severity: Error,
		Summary: "A Service's named targetPort matches no port of the pods it selects",
		Rollout: "The selected pods get no endpoint for that port, so its connections are refused even though the pods are ready.",
		Why: `A targetPort given by name is looked up among the selected pods' container ports. When no
container declares a port of that name (and protocol), the EndpointSlice controller leaves
the pod out for that Service port: the Service port has no endpoints, and kube-proxy rejects
its connections. Renaming a container port without the Service is the usual cause.`,
		Fix: `Declare a container port with that name, or use the name (or number) the container
declares.`,
		Example: `# Service
ports:
  - port: 80
    targetPort: http
# Deployment container
ports:
  - name: http
    containerPort: 8080`,
		NoFix:   "Whether the Service or the container has the wrong name cannot be told.",
		Subject: "Service",
		Model: func(s Settings, m *model.Model) []Finding {
			var out []Finding
			for _, svc := range m.Services {
				for _, sp := range svc.Unresolved {
					idx := 0
					for i := range svc.Spec.Spec.Ports {
						if &svc.Spec.Spec.Ports[i] == sp {
							idx = i
						}
					}
					out = append(out, Finding{Object: svc.Object, Path: fmt.Sprintf("spec.ports[%d]", idx),
						Message: fmt.Sprintf("port %d targets %q, which no container of the selected pods declares", sp.Port, sp.TargetPort.String()),
						Fix:     fmt.Sprintf("declare a container port named %q, or target a declared port", sp.TargetPort.String())})
				}
			}
			return out
		},
	}
}
