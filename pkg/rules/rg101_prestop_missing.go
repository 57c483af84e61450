package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func prestopMissing() *Rule {
	return &Rule{
		ID: "RG101", Name: "prestop-missing", Case: Case1, Severity: Error,
		Summary: "A served container has no preStop delay",
		Rollout: "The container gets SIGTERM the moment its pod is deleted and stops listening while kube-proxy on other nodes still sends it new connections, which are refused.",
		Why: `When a pod is deleted, two things start at once: the kubelet runs the container's
preStop hook and then sends SIGTERM, and the EndpointSlice controller removes the pod from
the Service. The second change reaches every node's kube-proxy on its own schedule: at least
its min-sync-period (1s by default), often several seconds, and tens of seconds in large
clusters. Until a node has reprogrammed its rules it keeps sending new connections to the
old pod. Without a preStop delay the app receives SIGTERM at once, closes its listener, and
those connections get "connection refused" (or time out, or "no route to host", once the
pod's address is gone).`,
		Fix: `Add a preStop hook that sleeps for at least the propagation budget, so the container keeps
serving until every node has stopped sending it traffic. Use the native sleep action
(Kubernetes 1.30+, GA in 1.34): it needs no shell or sleep binary in the image.`,
		Example: `containers:
  - name: web
    lifecycle:
      preStop:
        sleep:
          seconds: 5`,
		Remediate: fixPreStop,
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				sd := w.Shutdown(c)
				if !sd.Known() || sd.Delay() > 0 {
					continue // RG105 judges hooks of unknown effect, RG102 short delays
				}
				msg := fmt.Sprintf("container %q serves %s and has no preStop hook", c.Spec.Name, portsText(c))
				if sd.Hook.Kind != model.PreStopNone {
					msg = fmt.Sprintf("container %q serves %s and its preStop hook runs %s at once, with no delay before it", c.Spec.Name, portsText(c), sd.Hook.Action)
				}
				out = append(out, onContainer(c, "lifecycle", msg+propagationNote(c),
					fmt.Sprintf("add lifecycle.preStop.sleep.seconds: %d (the propagation budget)", s.BudgetSeconds())))
			}
			return out
		},
	}
}
