package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func readinessUnknownPort() *Rule {
	return &Rule{
		ID: "RG203", Name: "readiness-unknown-port", Case: Case2, Severity: Error,
		Summary: "The readinessProbe names a port the container does not declare",
		Rollout: "The probe can never succeed, so new pods never become ready and the rollout stalls with the old pods still serving, or a fresh install serves nothing.",
		Why: `A probe's port may be a name, which the kubelet looks up among the same container's ports.
A name that no port of that container carries (a typo, or a port declared on another
container) makes every probe fail: the pod never turns ready, never receives traffic, and the
rollout never completes.`,
		Fix: `Use the name of a port declared on the same container, or the port number.`,
		Example: `ports:
  - name: http
    containerPort: 8080
readinessProbe:
  httpGet:
    path: /ready
    port: http`,
		NoFix: "The intended port cannot be told from a misspelt name.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				p := c.Spec.ReadinessProbe
				if p == nil {
					continue
				}
				if port, ok := probePort(p); ok && resolvePort(c.Spec, port) == 0 {
					out = append(out, onContainer(c, "readinessProbe",
						fmt.Sprintf("container %q probes readiness on port %q, which it does not declare", c.Spec.Name, port.String()),
						fmt.Sprintf("use port %d, or declare a port named %q", c.Served[0].Port, port.String())))
				}
			}
			return out
		},
	}
}
