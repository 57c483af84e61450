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
preStop hook and then sends SIGTERM, and the EndpointSlice controller marks the pod's
endpoint terminating (not ready), so kube-proxy stops picking it for new connections while
another endpoint is ready. That change reaches every node's kube-proxy on its own schedule:
kube-proxy applies changes at most once per min-sync-period (1s by default), so often up to
a second or more later, and tens of seconds in large clusters. Until a node has reprogrammed its rules it keeps sending new connections to the
old pod. Without a preStop delay the app receives SIGTERM at once, closes its listener, and
those connections get "connection refused" (or time out, or "no route to host", once the
pod's address is gone).

rollguard reads what a preStop hook does (see RG105): a hook that stops or signals the app
at once (nginx -s quit, kill -QUIT 1, apachectl -k graceful-stop, ingress-nginx's
/wait-shutdown with the controller's default --shutdown-grace-period of 0) is no delay, and
fires this rule. Some apps keep serving for a while after SIGTERM on their own (a "lame
duck" period). Declare that on the pod template or the workload with the annotation
rollguard.io/shutdown-delay (a duration such as 3s); rollguard also reads it from the
flags --shutdown-grace-period (ingress-nginx) and --shutdown-delay-duration. That delay
counts like a preStop sleep, here and in RG102 and RG103.

The finding is info when only scrapers use the container's ports (port names such as
metrics or pprof, or reached only through a Service of their own that a ServiceMonitor of
the input scrapes), since scrapers dial pod addresses and not the Service; and when the rollout leaves no other pod serving
anyway (one replica that cannot surge, or Recreate: RG304 and RG301 report that gap). For
a headless Service the message says that propagation is DNS caching, not kube-proxy.`,
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
				fix := fmt.Sprintf("add lifecycle.preStop.sleep.seconds: %d (the propagation budget)", s.BudgetSeconds())
				if sd.Hook.Kind != model.PreStopNone && sd.Hook.SleepOnly {
					msg = fmt.Sprintf("container %q serves %s and its preStop hook sleeps 0s", c.Spec.Name, portsText(c))
				} else if sd.Hook.Kind != model.PreStopNone {
					msg = fmt.Sprintf("container %q serves %s and its preStop hook runs %s at once, with no delay before it", c.Spec.Name, portsText(c), sd.Hook.Action)
					// A hook holds one action: the sleep goes in front of the command.
					fix = fmt.Sprintf("sleep %ds in the hook before %s (a shell hook: rollguard fix --prepend-sleep), or have the app keep serving that long after SIGTERM", s.BudgetSeconds(), sd.Hook.Action)
				}
				out = append(out, onContainer(c, "lifecycle", msg+propagationNote(c), fix))
			}
			return out
		},
	}
}
