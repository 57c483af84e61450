package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/model"
)

// Default returns the registry of every rollguard rule.
func Default() *Registry {
	reg, err := NewRegistry(
		prestopMissing(), prestopShort(), gracePeriodShort(), prestopNeedsShell(), prestopUnknown(),
		readinessMissing(), readinessWrongPort(), readinessUnknownPort(), readinessIsLiveness(),
		recreateStrategy(), allUnavailable(), noProgress(), singleReplica(), minReadyZero(), daemonSetLocal(),
		pdbMissing(), pdbBlocksDrain(), pdbSelectsNothing(),
		serviceSelectsNothing(), serviceTargetPortUnresolved(),
	)
	if err != nil {
		panic(err) // a programming error, caught by the registry's tests
	}
	return reg
}

// servedContainers returns the containers that receive traffic, or nil for
// workloads that serve none: only those can lose connections in a rollout.
func servedContainers(w *model.Workload) []*model.Container {
	if !w.Served || w.Batch {
		return nil
	}
	return w.ServedContainers()
}

func onContainer(c *model.Container, field, msg, fix string) Finding {
	p := c.Path
	if field != "" {
		p += "." + field
	}
	return Finding{Container: c.Spec.Name, Path: p, Message: msg, Fix: fix}
}

// portsText renders the ports a container serves: "8080 (Service web port 80)".
func portsText(c *model.Container) string {
	var parts []string
	seen := map[int32]bool{}
	users := c.TelemetryOnly() == "" // some port carries users' traffic: name only those
	for _, sp := range c.Served {
		if seen[sp.Port] || (users && sp.Telemetry != "") {
			continue
		}
		seen[sp.Port] = true
		s := fmt.Sprint(sp.Port)
		if sp.Service != nil {
			s += fmt.Sprintf(" (Service %s port %d)", sp.Service.Object.Name, sp.ServicePort.Port)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func secs(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return d.String()
}

// probePort returns the port a probe's handler connects to, and false for
// exec probes, which connect nowhere rollguard can see.
func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	case p.GRPC != nil:
		return intstr.FromInt32(p.GRPC.Port), true
	}
	return intstr.IntOrString{}, false
}

// resolvePort resolves a probe port against the container's own ports as
// the kubelet does: a name is looked up among them (pkg/probe/util.go). A
// numeric string is read as a number too, which the API server would not
// have accepted as a name; it returns 0 for a name no port has.
func resolvePort(c *corev1.Container, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort
		}
	}
	n, err := strconv.Atoi(port.StrVal)
	if err != nil || n <= 0 || n > 65535 {
		return 0
	}
	return int32(n)
}

// rollingKind reports whether the strategy rules judge this workload's rollout.
func rollingKind(w *model.Workload) bool {
	switch w.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Rollout":
		return !w.Batch
	}
	return false
}

// containerOf returns the container a finding is about.
func containerOf(f Finding) *model.Container {
	if f.Workload == nil {
		return nil
	}
	for _, c := range f.Workload.Containers {
		if c.Spec.Name == f.Container {
			return c
		}
	}
	return nil
}

// sleepHook is the preStop handler that sleeps d: the native action, or an
// exec of the image's sleep binary on clusters older than 1.30.
func sleepHook(o FixOptions, d time.Duration) (Map, string) {
	secs := ceilSeconds(d)
	if o.NativeSleep() {
		return M("sleep", M("seconds", secs)), "the native sleep action needs Kubernetes 1.30 or later; for older clusters pass --k8s-version to get an exec sleep"
	}
	return M("exec", M("command", []any{"sleep", strconv.FormatInt(secs, 10)})),
		fmt.Sprintf("Kubernetes 1.%d has no native sleep action: the hook runs the image's sleep binary, which distroless and scratch images lack", o.KubeMinor)
}

// lacksSleep reports whether a container's image is, by its name, a
// minimal one (see minimalImage) and nothing in the pod spec shows it has
// a sleep binary: RG104's warning, before the hook is written.
func lacksSleep(c *corev1.Container) bool {
	return minimalImage(c.Image) && !model.ImageHas(c, "sleep")
}

// fixPreStop makes a container's delay before it stops listening at least
// the budget: it replaces a hook that only sleeps (counting the app's own
// delay after SIGTERM), and declines one that does other work unless
// PrependSleep puts a sleep in front of a shell script.
func fixPreStop(o FixOptions, f Finding) Remedy {
	c := containerOf(f)
	if c == nil {
		return unfixable("container %q not found", f.Container)
	}
	sd := f.Workload.Shutdown(c)
	ps := sd.Hook
	if !sd.Known() {
		return unfixable("the preStop hook %s: make it keep the app serving for the propagation budget by hand", ps.Unknown)
	}
	path := c.Path + ".lifecycle.preStop"
	switch {
	case ps.Kind == model.PreStopNone && !o.NativeSleep() && lacksSleep(c.Spec):
		// An exec sleep would fail at once on it (FailedPreStopHook), which
		// is no better than no hook, and a hook that looks like a fix.
		return unfixable("Kubernetes 1.%d has no native sleep action, and image %q looks like a minimal one with no sleep binary for an exec hook: "+
			"make the app keep serving for %s after SIGTERM (and declare it with the %s annotation), or run nodes of 1.30 or later",
			o.KubeMinor, c.Spec.Image, o.PropagationBudget, model.ShutdownDelayAnnotation)
	case ps.Kind == model.PreStopNone || (ps.Kind == model.PreStopExec && ps.SleepOnly):
		// The app's own delay after SIGTERM counts: the hook sleeps the rest.
		hook, note := sleepHook(o, max(ps.Delay, o.PropagationBudget-sd.InApp))
		return Remedy{Ops: []Op{{Path: path, Value: hook}}, Note: note}
	case ps.Kind == model.PreStopSleep:
		return Remedy{Ops: []Op{{Path: path + ".sleep.seconds", Value: ceilSeconds(max(ps.Delay, o.PropagationBudget-sd.InApp))}}}
	case o.PrependSleep && ps.Shell:
		// Only the script changes, so the list keeps its form and quoting.
		cmd := c.Spec.Lifecycle.PreStop.Exec.Command
		last := len(cmd) - 1
		script := fmt.Sprintf("sleep %d; %s", ceilSeconds(o.PropagationBudget-sd.Delay()), cmd[last])
		return Remedy{Ops: []Op{{Path: fmt.Sprintf("%s.exec.command[%d]", path, last), Value: script}},
			Note: "--prepend-sleep: the hook sleeps before its own work"}
	default:
		return unfixable("the preStop hook does more than sleep, and rollguard does not merge hooks: " +
			"move that work into the app's SIGTERM handling, or pass --prepend-sleep to sleep before it (shell hooks)")
	}
}

// propagationNote says, for a container served only through headless
// Services, that the propagation it waits for is DNS caching.
func propagationNote(c *model.Container) string {
	for _, sp := range c.Served {
		if sp.Service == nil || sp.Service.Spec.Spec.ClusterIP != corev1.ClusterIPNone {
			return ""
		}
	}
	return " (its Services are headless: clients find pods through DNS, so the propagation to wait for is DNS caching, not kube-proxy)"
}
