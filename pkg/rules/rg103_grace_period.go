package rules

import (
	"fmt"
	"time"

	"github.com/rollguard/rollguard/pkg/model"
)

func gracePeriodShort() *Rule {
	return &Rule{
		ID: "RG103", Name: "grace-period-too-short", Case: Case1, Severity: Error,
		Summary: "terminationGracePeriodSeconds does not cover the preStop delay plus the app's drain",
		Rollout: "The kubelet kills the container before it has finished its preStop delay and drained its in-flight requests, which fail with resets.",
		Why: `The grace period is counted from the moment the pod is deleted, and the preStop hook runs
inside it: with a 5s preStop sleep and the default 30s grace period the app has 25s left
after SIGTERM. When the grace period runs out the kubelet sends SIGKILL (after preStop it
keeps at least 2s between SIGTERM and SIGKILL), and every request still in flight is reset.
rollguard wants the grace period to be at least the longest known preStop delay plus a
drain allowance (--drain-allowance, 5s by default). A native sleep action longer than the
grace period is rejected by the API server; an exec sleep is not, and is cut short instead.`,
		Fix: `Set terminationGracePeriodSeconds to at least the preStop delay plus the time the app needs
to finish in-flight requests after SIGTERM. Never lower it below what the app needs.`,
		Example: `spec:
  terminationGracePeriodSeconds: 30   # >= preStop (5s) + drain (5s)
  containers:
    - name: web
      lifecycle:
        preStop:
          sleep:
            seconds: 5`,
		Remediate: func(o FixOptions, f Finding) Remedy {
			delay, _, _ := longestShutdown(f.Workload)
			// Raised, never lowered: the rule fires only below this value.
			want := max(delay, o.PropagationBudget) + o.DrainAllowance
			return Remedy{Ops: []Op{{Path: f.Workload.SpecPath() + ".terminationGracePeriodSeconds", Value: ceilSeconds(want)}}}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			served := servedContainers(w)
			if len(served) == 0 {
				return nil
			}
			delay, native, known := longestShutdown(w)
			if !known {
				return nil // a hook of unknown length: nothing to compare with
			}
			grace, written := w.GracePeriod()
			need := delay + s.DrainAllowance
			if grace >= need {
				return nil
			}
			msg := fmt.Sprintf("terminationGracePeriodSeconds is %s; the delay before shutdown %s + drain %s needs %s", secs(grace), secs(delay), secs(s.DrainAllowance), secs(need))
			if !written {
				msg = fmt.Sprintf("terminationGracePeriodSeconds is the default %s; the delay before shutdown %s + drain %s needs %s", secs(grace), secs(delay), secs(s.DrainAllowance), secs(need))
			}
			switch {
			case native > grace:
				msg += " (the API server rejects a preStop sleep longer than the grace period)"
			case delay >= grace:
				msg += " (the kubelet kills the container before it stops serving)"
			}
			// Size the fix for the delay the other rules ask for, so that
			// applying every fix leaves no finding behind.
			want := max(delay, s.PropagationBudget) + s.DrainAllowance
			return []Finding{{
				Path:    w.SpecPath() + ".terminationGracePeriodSeconds",
				Message: msg,
				Fix: fmt.Sprintf("set terminationGracePeriodSeconds: %d (delay %s + drain %s)",
					ceilSeconds(want), secs(max(delay, s.PropagationBudget)), secs(s.DrainAllowance)),
			}}
		},
	}
}

// longestShutdown is the longest time any container of the workload keeps
// serving after the pod's deletion (preStop plus the app's own delay), the
// longest native preStop sleep, and whether every container's is known.
func longestShutdown(w *model.Workload) (delay, native time.Duration, known bool) {
	for _, c := range w.Containers {
		sd := w.Shutdown(c)
		if !sd.Known() {
			return 0, 0, false
		}
		delay = max(delay, sd.Delay())
		if sd.Hook.Kind == model.PreStopSleep {
			native = max(native, sd.Hook.Delay)
		}
	}
	return delay, native, true
}
