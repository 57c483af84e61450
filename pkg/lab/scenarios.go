package lab

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/traffic"
)

// Base is the default scenario: three replicas rolled with Kubernetes'
// default strategy (25% surge, 25% unavailable), three client nodes whose
// proxies take 200ms to 1s to apply a change (kube-proxy's default
// min-sync-period is 1s), pods whose container starts in 1.5s and whose
// app listens 1.5s later.
func Base() Scenario {
	return Scenario{
		Replicas:       3,
		MaxSurge:       intstr.FromString("25%"),
		MaxUnavailable: intstr.FromString("25%"),
		Propagation:    Propagation{Low: 200 * time.Millisecond, High: time.Second}.Delays(3, 1),
		ContainerStart: 1500 * time.Millisecond,
		ListenDelay:    1500 * time.Millisecond,
		Drain:          time.Second,
		Grace:          30 * time.Second,
		RolloutAfter:   time.Second,
		Tail:           1500 * time.Millisecond,
		MaxDuration:    45 * time.Second,
		Rate:           300,
		Mode:           traffic.ModeHTTP,
		Seed:           1,
	}
}

// Fixes are the two fixes the lab compares.
type Fixes struct {
	PreStop   time.Duration // 0: no preStop hook
	Readiness *Probe        // nil: no readinessProbe
}

// Standard returns the four scenarios `rollguard lab` compares: neither
// fix, each fix alone, and both.
func Standard(base Scenario, preStop time.Duration, probe Probe) []Scenario {
	var out []Scenario
	for _, f := range []struct {
		name string
		fix  Fixes
	}{
		{"no preStop, no readiness", Fixes{}},
		{fmt.Sprintf("preStop %s only", short(preStop)), Fixes{PreStop: preStop}},
		{"readinessProbe only", Fixes{Readiness: &probe}},
		{fmt.Sprintf("preStop %s + readiness", short(preStop)), Fixes{PreStop: preStop, Readiness: &probe}},
	} {
		s := base
		s.Name, s.PreStop, s.Readiness = f.name, f.fix.PreStop, f.fix.Readiness
		out = append(out, s)
	}
	return out
}

// Sweep returns the base scenario, with a readinessProbe, once for each
// preStop length from lo to hi in steps of step.
func Sweep(base Scenario, probe Probe, lo, hi, step time.Duration) []Scenario {
	var out []Scenario
	for d := lo; d <= hi; d += step {
		s := base
		s.Name, s.PreStop, s.Readiness = "preStop "+short(d), d, &probe
		out = append(out, s)
	}
	return out
}

func short(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return d.String()
}
