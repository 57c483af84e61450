package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func prestopShort() *Rule {
	return &Rule{
		ID: "RG102", Name: "prestop-too-short", Case: Case1, Severity: Error,
		Summary: "A served container's preStop delay is shorter than endpoint propagation",
		Rollout: "The container stops listening before every node's kube-proxy has removed it, so connections from the slower nodes are refused or time out.",
		Why: `A preStop sleep only protects a rollout if it outlasts endpoint propagation: the time from
the pod's deletion until the last node's kube-proxy stops sending it new connections. A
sleep shorter than that ends while some nodes still route to the pod. rollguard compares the
sleep with the propagation budget (--propagation-budget, 5s by default): kube-proxy syncs
at most once per min-sync-period (1s by default), and large clusters take several seconds
more.

The delay rollguard compares is the time from the pod's deletion until the container stops
accepting connections: the sleeps of the preStop hook before any command that stops or
signals the app, plus, unless the hook stopped the app itself, the app's own delay after
SIGTERM (the rollguard.io/shutdown-delay annotation, or the --shutdown-grace-period and
--shutdown-delay-duration flags). $VAR in a shell hook is read from the container's env;
the kubelet does not expand $(VAR) in hooks (only in command and args), so a hook that
relies on it gets the literal text.`,
		Fix: `Raise the preStop sleep to at least the propagation budget, and raise
terminationGracePeriodSeconds with it (see RG103).`,
		Example: `lifecycle:
  preStop:
    sleep:
      seconds: 5   # >= propagation budget`,
		Remediate: fixPreStop,
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				sd := w.Shutdown(c)
				if !sd.Known() || sd.Delay() == 0 || sd.Delay() >= s.PropagationBudget {
					continue
				}
				// The hook must make up what the app's own delay lacks.
				need := ceilSeconds(s.PropagationBudget - sd.Delay() + sd.Hook.Delay)
				fix := fmt.Sprintf("raise the preStop sleep to %ds", need)
				if sd.Hook.Kind == model.PreStopNone {
					fix = fmt.Sprintf("add lifecycle.preStop.sleep.seconds: %d", need)
				}
				out = append(out, onContainer(c, "lifecycle",
					fmt.Sprintf("container %q stops accepting connections %s after its pod is deleted (%s), less than the %s propagation budget",
						c.Spec.Name, secs(sd.Delay()), sd.Describe(), secs(s.PropagationBudget))+propagationNote(c), fix))
			}
			return out
		},
	}
}
