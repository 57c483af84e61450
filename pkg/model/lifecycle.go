package model

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DefaultGracePeriod is the API's default terminationGracePeriodSeconds.
const DefaultGracePeriod = 30 * time.Second

// PreStopKind says what a preStop hook is.
type PreStopKind int

// The kinds of preStop hook.
const (
	// PreStopNone: no preStop hook.
	PreStopNone PreStopKind = iota
	// PreStopSleep: the native sleep action (GA in Kubernetes 1.34).
	PreStopSleep
	// PreStopExecSleep: an exec hook whose delay could be read from a
	// sleep command, run directly or through a shell.
	PreStopExecSleep
	// PreStopUnknown: an exec or httpGet hook whose duration cannot be read
	// (a custom binary, an HTTP call).
	PreStopUnknown
)

// PreStop describes a container's preStop hook.
type PreStop struct {
	Kind PreStopKind
	// Delay is the sleep, for PreStopSleep and PreStopExecSleep.
	Delay time.Duration
	// Interpreter is the shell or binary an exec hook depends on in the
	// image ("sh", "bash", "sleep", ...), or "".
	Interpreter string
	// OtherWork is true when an exec hook does more than sleep.
	OtherWork bool
}

// Known reports whether the hook's delay is known.
func (p PreStop) Known() bool { return p.Kind == PreStopSleep || p.Kind == PreStopExecSleep }

var (
	shells   = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "ksh": true, "busybox": true}
	sleepRe  = regexp.MustCompile(`(?:^|[\s;&|(])sleep\s+([0-9]+(?:\.[0-9]+)?)([smh]?)(?:$|[\s;&|)])`)
	onlySlRe = regexp.MustCompile(`^\s*(?:exec\s+)?sleep\s+[0-9]+(?:\.[0-9]+)?[smh]?\s*;?\s*$`)
)

// ParsePreStop reads a container's preStop hook.
func ParsePreStop(c *corev1.Container) PreStop {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return PreStop{}
	}
	h := c.Lifecycle.PreStop
	switch {
	case h.Sleep != nil:
		return PreStop{Kind: PreStopSleep, Delay: time.Duration(h.Sleep.Seconds) * time.Second}
	case h.Exec != nil && len(h.Exec.Command) > 0:
		cmd := h.Exec.Command
		bin := path.Base(cmd[0])
		if bin == "busybox" && len(cmd) > 1 {
			cmd = cmd[1:]
			bin = path.Base(cmd[0])
		}
		ps := PreStop{Kind: PreStopUnknown, Interpreter: bin}
		var script string
		switch {
		case bin == "sleep" && len(cmd) == 2:
			script = "sleep " + cmd[1]
		case shells[bin]:
			for i := 1; i < len(cmd); i++ {
				if strings.HasPrefix(cmd[i], "-") && strings.Contains(cmd[i], "c") && i+1 < len(cmd) {
					script = cmd[i+1]
					break
				}
			}
		}
		if m := sleepRe.FindStringSubmatch(script); m != nil {
			if d, ok := sleepDuration(m[1], m[2]); ok {
				ps.Kind, ps.Delay = PreStopExecSleep, d
				ps.OtherWork = !onlySlRe.MatchString(script)
			}
		} else if shells[bin] || bin == "sleep" {
			ps.OtherWork = true
		}
		return ps
	}
	return PreStop{Kind: PreStopUnknown}
}

func sleepDuration(num, unit string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, false
	}
	mult := time.Second
	switch unit {
	case "m":
		mult = time.Minute
	case "h":
		mult = time.Hour
	}
	return time.Duration(f * float64(mult)), true
}

// GracePeriod is the pod's terminationGracePeriodSeconds, defaulted, and
// whether it was written.
func (w *Workload) GracePeriod() (time.Duration, bool) {
	if g := w.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second, true
	}
	return DefaultGracePeriod, false
}

// Fenceposts resolves maxSurge and maxUnavailable against a replica count
// as the Deployment controller does: surge rounds up, unavailable rounds
// down, and when both come to zero the controller lets one pod be
// unavailable so that the rollout can move at all (forced is then true).
func Fenceposts(maxSurge, maxUnavailable intstr.IntOrString, replicas int32) (surge, unavailable int32, forced bool, err error) {
	s, err := intstr.GetScaledValueFromIntOrPercent(&maxSurge, int(replicas), true)
	if err != nil {
		return 0, 0, false, err
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, int(replicas), false)
	if err != nil {
		return 0, 0, false, err
	}
	if s == 0 && u == 0 {
		return 0, 1, true, nil
	}
	return int32(s), int32(u), false, nil
}

// IsZero reports whether an int-or-percent value is zero ("0" or "0%").
func IsZero(v intstr.IntOrString) bool {
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	s := strings.TrimSuffix(v.StrVal, "%")
	n, err := strconv.Atoi(s)
	return err == nil && n == 0
}

// IsShell reports whether a binary name is a shell.
func IsShell(bin string) bool { return shells[bin] }
