package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func readinessMissing() *Rule {
	return &Rule{
		ID: "RG201", Name: "readiness-missing", Case: Case2, Severity: Error,
		Summary: "A served container has no readinessProbe",
		Rollout: "Each new pod joins the Service's endpoints as soon as its containers start, before the app listens, and its first connections are refused.",
		Why: `Without a readinessProbe a container counts as ready the moment it starts. The EndpointSlice
controller then adds the pod to the Service, and kube-proxy starts sending it connections
while the app is still loading, before it listens: "connection refused". The Deployment
controller also counts the pod as available and deletes an old pod, so capacity drops
while the new one is not yet serving.`,
		Fix: `Add a readinessProbe on the port the Service targets: an httpGet on a health path that
answers only once the app serves, or a tcpSocket probe on the served port.`,
		Example: `readinessProbe:
  tcpSocket:
    port: 8080        # the port the Service targets
  periodSeconds: 2
  failureThreshold: 2`,
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				if c.Spec.ReadinessProbe != nil {
					continue
				}
				port := c.Served[0].Port
				out = append(out, onContainer(c, "",
					fmt.Sprintf("container %q serves %s and has no readinessProbe", c.Spec.Name, portsText(c)),
					fmt.Sprintf("add a readinessProbe on port %d (tcpSocket, or httpGet on a health path)", port)))
			}
			return out
		},
	}
}
