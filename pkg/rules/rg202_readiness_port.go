package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func readinessWrongPort() *Rule {
	return &Rule{
		ID: "RG202", Name: "readiness-wrong-port", Case: Case2, Severity: Warning,
		Summary: "The readinessProbe checks a port the Service does not target",
		Rollout: "The pod can turn ready because a health port answers while the served port does not listen yet, and its first connections are refused.",
		Why: `Readiness decides when the pod receives Service traffic, so it should prove that the served
port accepts connections. A probe on another port (an admin or metrics port, a sidecar's
port) can succeed while the served listener is not up yet, or already closed, and the pod
then receives connections it refuses. An exec probe is not checked. A probe on a port the
same container declares, or that no container declares (an admin or health server of the
same process), is reported as info: that design is common and often deliberate. A probe on another container's port is a
warning: it proves nothing about this container.`,
		Fix: `Point the readinessProbe at the port the Service targets, or make sure the health port
cannot answer before the served port listens.`,
		Example: `ports:
  - name: http
    containerPort: 8080
readinessProbe:
  httpGet:
    path: /healthz
    port: http      # the Service's targetPort`,
		NoFix: "Which port proves the app is ready is the app's knowledge: a health port may be deliberate. Point the probe at the served port by hand.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				p := c.Spec.ReadinessProbe
				if p == nil {
					continue
				}
				port, ok := probePort(p)
				num := resolvePort(c.Spec, port)
				if !ok || num == 0 {
					continue // exec probes, and named ports that RG203 reports
				}
				hit := false
				for _, sp := range c.Served {
					hit = hit || sp.Port == num
				}
				if hit {
					continue
				}
				f := onContainer(c, "readinessProbe",
					fmt.Sprintf("container %q probes readiness on port %d but serves %s", c.Spec.Name, num, portsText(c)),
					fmt.Sprintf("probe the served port %d", c.Served[0].Port))
				switch owner := portOwner(w, num); {
				case owner != nil && owner != c:
					f.Message += fmt.Sprintf("; port %d belongs to container %q, so the probe says nothing about this one", num, owner.Spec.Name)
				case owner == c:
					// A health or admin port of the same process is a common,
					// deliberate design; whether it answers before the served
					// port listens is the app's knowledge.
					f.Lowered = fmt.Sprintf("port %d is the same container's own health port", num)
				default:
					// No container declares it: no sidecar's port, so most
					// likely the app's own admin server.
					f.Lowered = fmt.Sprintf("no container declares port %d, so it is most likely the app's own health port", num)
				}
				out = append(out, f)
			}
			return out
		},
	}
}

// portOwner is the container of the workload that declares a port number.
func portOwner(w *model.Workload, num int32) *model.Container {
	for _, c := range w.Containers {
		for _, p := range c.Spec.Ports {
			if p.ContainerPort == num {
				return c
			}
		}
	}
	return nil
}
