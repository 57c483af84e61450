package model

import (
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// DefaultGracePeriod is the API's default terminationGracePeriodSeconds.
const DefaultGracePeriod = 30 * time.Second

var shells = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "ksh": true, "busybox": true}

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
