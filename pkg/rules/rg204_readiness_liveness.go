package rules

import (
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/pkg/model"
)

func readinessIsLiveness() *Rule {
	return &Rule{
		ID: "RG204", Name: "readiness-equals-liveness", Case: Case2, Severity: Warning,
		Summary: "The liveness probe gives up no later than readiness, on the same handler",
		Rollout: "A pod that is briefly overloaded during the rollout is restarted at the same moment it is taken out of the endpoints, instead of being given time to recover.",
		Why: `Readiness takes a pod out of the Service while it cannot serve; liveness restarts it. When
both probes check the same thing and liveness gives up as soon as readiness does, or sooner
(its period times failureThreshold is no longer), a pod that stops answering for a
moment (busy with the traffic its retired peers handed over) is removed and killed
together: capacity drops twice and the restarted pod goes through start-up again. Sharing
the handler is fine and common practice, as long as liveness gives up later: a higher
failureThreshold or a longer period.`,
		Fix: `Keep the handler if you like, but let liveness tolerate more: for example failureThreshold
3 for readiness and 6 for liveness, so a pod is taken out of rotation well before it is
restarted.`,
		Example: `readinessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 6`,
		NoFix: "Loosening liveness changes when pods are restarted, a decision for the app's owner.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				r, l := c.Spec.ReadinessProbe, c.Spec.LivenessProbe
				if r == nil || l == nil || !reflect.DeepEqual(r.ProbeHandler, l.ProbeHandler) {
					continue
				}
				rt, lt := timing(r), timing(l)
				if lt.window() > rt.window() {
					continue // liveness gives up later: the pod leaves the endpoints first
				}
				msg := fmt.Sprintf("container %q has identical readiness and liveness probes", c.Spec.Name)
				if rt != lt {
					msg = fmt.Sprintf("container %q restarts after %ds of failing liveness, no later than readiness takes it out of the endpoints (%ds), on the same handler",
						c.Spec.Name, lt.window(), rt.window())
				}
				// The smallest failureThreshold that makes liveness outlast readiness.
				need := rt.window()/lt.period + 1
				out = append(out, onContainer(c, "livenessProbe", msg,
					fmt.Sprintf("raise livenessProbe.failureThreshold to %d or more", need)))
			}
			return out
		},
	}
}

type probeTiming struct{ delay, period, timeout, success, failure int32 }

// window is how long a probe fails before the kubelet acts on it: the
// period times the failure threshold.
func (t probeTiming) window() int32 { return t.period * t.failure }

// timing returns a probe's timing with the API's defaults filled in.
func timing(p *corev1.Probe) probeTiming {
	t := probeTiming{p.InitialDelaySeconds, p.PeriodSeconds, p.TimeoutSeconds, p.SuccessThreshold, p.FailureThreshold}
	for _, f := range []struct {
		v   *int32
		def int32
	}{{&t.period, 10}, {&t.timeout, 1}, {&t.success, 1}, {&t.failure, 3}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return t
}
