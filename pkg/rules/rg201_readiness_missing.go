package rules

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

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
		Remediate: func(o FixOptions, f Finding) Remedy {
			c := containerOf(f)
			if c == nil {
				return unfixable("container %q not found", f.Container)
			}
			if onlyUDP(c) {
				return unfixable("the container serves only UDP: a tcpSocket probe cannot check it, and which health check proves the app ready is the app's knowledge")
			}
			port, num := servedPortRef(c)
			// An httpGet or tcpSocket liveness probe on the served port already
			// says how to ask the app; readiness reuses it with its own timing.
			if l := c.Spec.LivenessProbe; l != nil && (l.HTTPGet != nil || l.TCPSocket != nil) {
				if p, ok := probePort(l); ok && resolvePort(c.Spec, p) == num {
					handler, err := toMap(l.ProbeHandler)
					if err == nil {
						probe := append(handler, Field{"periodSeconds", readinessPeriod}, Field{"failureThreshold", readinessFailures})
						return Remedy{Ops: []Op{{Path: c.Path + ".readinessProbe", Value: probe}},
							Note: "readiness reuses the liveness probe's handler"}
					}
				}
			}
			return Remedy{Ops: []Op{{Path: c.Path + ".readinessProbe", Value: M(
				"tcpSocket", M("port", port), "periodSeconds", readinessPeriod, "failureThreshold", readinessFailures)}}}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				if c.Spec.ReadinessProbe != nil || startupGates(c) {
					continue
				}
				port := firstTCP(c)
				msg := fmt.Sprintf("container %q serves %s and has no readinessProbe", c.Spec.Name, portsText(c))
				fix := fmt.Sprintf("add a readinessProbe on port %d (tcpSocket, or httpGet on a health path)", port)
				if onlyUDP(c) {
					fix = "add a readinessProbe that asks the app itself (exec, or httpGet on a health port): a tcpSocket probe cannot check a UDP port"
				}
				if c.Spec.StartupProbe != nil {
					msg += "; its startupProbe does not check a served port, so it does not prove the app listens"
				}
				out = append(out, onContainer(c, "", msg, fix))
			}
			return out
		},
	}
}

// The timing of an added readinessProbe: a pod is ready within 5s of
// listening, and out of the endpoints after 10s of failing.
const (
	readinessPeriod   = 5
	readinessFailures = 2
)

// servedPortRef is how the added probe names the served port: by the
// container port's name when it has one (as the Service usually does), else
// by number.
func servedPortRef(c *model.Container) (any, int32) {
	num := firstTCP(c)
	for _, p := range c.Spec.Ports {
		if p.ContainerPort == num && p.Name != "" {
			return p.Name, num
		}
	}
	return num, num
}

// startupGates reports whether the container's startupProbe checks a port
// it serves: the kubelet keeps a container unready until its startupProbe
// succeeds (prober_manager.go: a container not started is not ready), so
// such a probe keeps the pod out of the endpoints until it listens.
func startupGates(c *model.Container) bool {
	p := c.Spec.StartupProbe
	if p == nil {
		return false
	}
	port, ok := probePort(p)
	if !ok {
		return false
	}
	num := resolvePort(c.Spec, port)
	for _, sp := range c.Served {
		if sp.Port == num && sp.Protocol != corev1.ProtocolUDP {
			return true
		}
	}
	return false
}

// onlyUDP reports whether every port the container serves is UDP.
func onlyUDP(c *model.Container) bool {
	for _, sp := range c.Served {
		if sp.Protocol != corev1.ProtocolUDP {
			return false
		}
	}
	return len(c.Served) > 0
}

// firstTCP is the first served port a TCP probe can check (UDP ones cannot
// be), or the first served port when all are UDP.
func firstTCP(c *model.Container) int32 {
	for _, sp := range c.Served {
		if sp.Protocol != corev1.ProtocolUDP {
			return sp.Port
		}
	}
	return c.Served[0].Port
}
