package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func prestopNeedsShell() *Rule {
	return &Rule{
		ID: "RG104", Name: "prestop-exec-needs-binary", Case: Case1, Severity: Warning,
		Summary: "The preStop delay runs a shell or sleep binary that the image may not have",
		Rollout: "On an image without the binary the hook fails (FailedPreStopHook), the container gets SIGTERM at once and stops listening while nodes still send it traffic.",
		Why: `An exec preStop hook such as ["sh", "-c", "sleep 5"] runs inside the container's image.
Distroless and scratch images have neither a shell nor sleep, so the hook fails at once; the
kubelet records a FailedPreStopHook event and goes on to SIGTERM with no delay at all, and the
rollout loses connections exactly as with no preStop hook. The native sleep action, beta and
on by default in Kubernetes 1.30 and GA in 1.34, is run by the kubelet itself.`,
		Fix: `Replace the exec hook with the native sleep action. A hook that does more than sleep cannot
be merged automatically: move its other work into the app's SIGTERM handling, or keep it and
make sure the image ships the binaries it runs.`,
		Example: `lifecycle:
  preStop:
    sleep:          # instead of exec: {command: ["sh", "-c", "sleep 5"]}
      seconds: 5`,
		Remediate: func(o FixOptions, f Finding) Remedy {
			c := containerOf(f)
			if c == nil {
				return unfixable("container %q not found", f.Container)
			}
			ps := model.ParsePreStop(c.Spec)
			switch {
			case ps.OtherWork || ps.Kind != model.PreStopExecSleep:
				return unfixable("the hook does more than sleep: move that work into the app's SIGTERM handling, then use the native sleep action")
			case !o.NativeSleep():
				return unfixable("Kubernetes 1.%d has no native sleep action to replace the exec hook with", o.KubeMinor)
			}
			hook, _ := sleepHook(o, max(ps.Delay, o.PropagationBudget))
			return Remedy{Ops: []Op{{Path: c.Path + ".lifecycle.preStop", Value: hook}}}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				ps := model.ParsePreStop(c.Spec)
				if ps.Interpreter == "" || !(model.IsShell(ps.Interpreter) || ps.Interpreter == "sleep") {
					continue
				}
				fix := "replace the exec hook with lifecycle.preStop.sleep"
				if ps.Kind == model.PreStopExecSleep {
					fix = fmt.Sprintf("replace the exec hook with lifecycle.preStop.sleep.seconds: %d", max(ceilSeconds(ps.Delay), s.BudgetSeconds()))
				}
				if ps.OtherWork {
					fix = "the hook does more than sleep: move that work into the app's SIGTERM handling, then use lifecycle.preStop.sleep"
				}
				out = append(out, onContainer(c, "lifecycle",
					fmt.Sprintf("container %q delays shutdown with an exec preStop hook that needs %q in the image", c.Spec.Name, ps.Interpreter), fix))
			}
			return out
		},
	}
}
