package rules

import (
	"fmt"
	"strings"

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
on by default in Kubernetes 1.30 and GA in 1.34, is run by the kubelet itself.

rollguard is quiet when the pod spec shows the image has the binary (the container's own
command, an exec probe or a postStart hook runs it). Otherwise it is a warning for images
whose name marks them as minimal (distroless, scratch, Chainguard's cgr.dev, static-debian;
not their :debug or -dev tags, nor busybox or wolfi-base images, which ship a shell) and info
for the rest, which usually ship a shell.`,
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
			sd := f.Workload.Shutdown(c)
			switch {
			case !sd.Hook.SleepOnly:
				return unfixable("the hook does more than sleep: move that work into the app's SIGTERM handling, then use the native sleep action")
			case !o.NativeSleep():
				return unfixable("Kubernetes 1.%d has no native sleep action to replace the exec hook with", o.KubeMinor)
			}
			hook, note := sleepHook(o, max(sd.Hook.Delay, o.PropagationBudget-sd.InApp))
			return Remedy{Ops: []Op{{Path: c.Path + ".lifecycle.preStop", Value: hook}}, Note: note}
		},
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				sd := w.Shutdown(c)
				if sd.Hook.Kind != model.PreStopExec {
					continue
				}
				var missing []string
				for _, bin := range sd.Hook.Needs {
					if (model.IsShell(bin) || bin == "sleep") && !model.ImageHas(c.Spec, bin) {
						missing = append(missing, fmt.Sprintf("%q", bin))
					}
				}
				if len(missing) == 0 {
					continue
				}
				need := strings.Join(missing, " and ")
				msg := fmt.Sprintf("container %q delays shutdown with an exec preStop hook that needs %s in the image, which nothing else in the pod spec shows it has", c.Spec.Name, need)
				fix := fmt.Sprintf("replace the exec hook with lifecycle.preStop.sleep.seconds: %d", max(ceilSeconds(sd.Hook.Delay), s.BudgetSeconds()))
				if !sd.Hook.SleepOnly {
					msg = fmt.Sprintf("container %q runs its preStop hook through %s, which nothing else in the pod spec shows the image has; without it the hook fails and the container gets SIGTERM at once", c.Spec.Name, need)
					fix = "make sure the image ships " + need + ", or move the hook's work into the app's SIGTERM handling and use lifecycle.preStop.sleep"
				}
				f := onContainer(c, "lifecycle", msg, fix)
				if !minimalImage(c.Spec.Image) {
					f.Lowered = fmt.Sprintf("image %q is not a distroless, scratch or other minimal image, which are the ones without a shell", c.Spec.Image)
				}
				out = append(out, f)
			}
			return out
		},
	}
}

// minimalImages are parts of image references that name images shipped
// without a shell or coreutils.
var minimalImages = []string{"distroless", "scratch", "chainguard", "cgr.dev/", "static-debian"}

// shellVariants are parts of minimal images' references that name the
// variants shipped with a shell and coreutils (busybox): distroless's
// :debug tags, Chainguard's -dev tags, busybox and wolfi-base images.
var shellVariants = []string{"busybox", "wolfi-base"}

// minimalImage reports whether an image reference looks like one without a
// shell. It is a name heuristic: other images may lack one too, which is
// why RG104 still reports them, as info.
func minimalImage(image string) bool {
	image = strings.ToLower(image)
	name, _, _ := strings.Cut(image, "@") // the digest
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	if strings.HasPrefix(tag, "debug") || tag == "dev" || strings.HasSuffix(tag, "-dev") || strings.Contains(tag, "-dev-") {
		return false
	}
	for _, v := range shellVariants {
		if strings.Contains(name, v) {
			return false
		}
	}
	for _, m := range minimalImages {
		if strings.Contains(name, m) {
			return true
		}
	}
	return false
}
