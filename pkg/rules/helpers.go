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
		prestopMissing(), prestopShort(), gracePeriodShort(), prestopNeedsShell(),
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
	for _, sp := range c.Served {
		if seen[sp.Port] {
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
// the kubelet does: a name is looked up first, then read as a number. It
// returns 0 for a name that is neither.
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
