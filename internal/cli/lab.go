package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rollguard/rollguard/pkg/lab"
	"github.com/rollguard/rollguard/pkg/traffic"
)

type labFlags struct {
	replicas                        int
	maxSurge, maxUnavailable        string
	nodes                           int
	propagation                     string
	containerStart, listenDelay     time.Duration
	drain, grace, preStop           time.Duration
	readinessPeriod, readinessDelay time.Duration
	minReady                        time.Duration
	rate                            float64
	maxDuration                     time.Duration
	mode                            string
	seed                            int64
	sweep                           string
	parallel                        int
	output                          string
	report                          string
	netns                           bool
	observe                         string
	probePeriod, budget             time.Duration
}

// ExitInterrupted is the exit status of a run stopped with Ctrl-C.
const ExitInterrupted = 130

func newLabCommand(s Streams) *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Reproduce Case 1 and Case 2 on this machine, with no cluster",
		Long: `Lab plays a rolling update under traffic four times: with neither fix, with a preStop delay
only, with a readinessProbe only, and with both. It shows the first three losing connections
and the last losing none.

The sockets are real: each pod is an HTTP server on its own loopback address (127.87.x.y;
on macOS, whose loopback has only 127.0.0.1, on a port of its own of 127.0.0.1), and a
request to a pod that does not listen gets a real "connection refused". The cluster is
modelled: a Deployment controller with Kubernetes' rounding, a kubelet that runs readiness
probes, preStop, SIGTERM and the grace period, and one kube-proxy view of the endpoints per
client node, each applying changes after its own delay.

Every failed request is attributed to Case 1 or Case 2 by the diagnosis verify uses, given
only what a cluster's observers show: Pod and EndpointSlice events, and a listen prober that
dials every pod's address each --probe-period. Nothing shows when each node's proxy applied
a change, so the diagnosis assumes a propagation window (--budget); a failure both cases
explain is reported as ambiguous. --observe conntrack adds the endpoint each request was
sent to, as verify's privileged agents read it from conntrack, and makes the diagnosis
exact. The ground truth it is checked against comes from the other side: the endpoint the
modelled proxy picked, and that pod's own record of when it listened.`,
		Example: `  # The four scenarios with the defaults (about 20 seconds)
  rollguard lab

  # Slower nodes, as in a large cluster: how long must preStop be?
  rollguard lab --propagation 1s..4s --sweep prestop=0s..6s/1s

  # One node per listed delay, a slow-starting app, keep-alive traffic
  rollguard lab --propagation 300ms,800ms,2s --listen-delay 3s --mode http-keepalive

  # Machine-readable figures, and a timeline picture
  rollguard lab -o json --report lab.html > lab.json

  # Pods in their own network namespaces: stopped pods' addresses vanish (root)
  sudo rollguard lab --netns

  # The diagnosis with the endpoint of every request, as privileged agents see it
  rollguard lab --observe conntrack`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), s) },
	}
	fs := cmd.Flags()
	fs.IntVar(&f.replicas, "replicas", 3, "replicas of the Deployment")
	fs.StringVar(&f.maxSurge, "max-surge", "25%", "the rolling update's maxSurge (number or percentage)")
	fs.StringVar(&f.maxUnavailable, "max-unavailable", "25%", "the rolling update's maxUnavailable (number or percentage)")
	fs.IntVar(&f.nodes, "nodes", 3, "client nodes, each with its own kube-proxy delay")
	fs.StringVar(&f.propagation, "propagation", "200ms..1s", "each node's delay in applying an endpoint change: a duration, a range lo..hi (drawn per node from --seed), or a list a,b,c (one node each)")
	fs.DurationVar(&f.containerStart, "container-start", 1500*time.Millisecond, "from pod creation to a running container")
	fs.DurationVar(&f.listenDelay, "listen-delay", 1500*time.Millisecond, "from a running container to the app accepting connections")
	fs.DurationVar(&f.drain, "drain", time.Second, "time the app takes to finish requests in flight after SIGTERM")
	fs.DurationVar(&f.grace, "grace", 30*time.Second, "terminationGracePeriodSeconds")
	fs.DurationVar(&f.preStop, "prestop", 3*time.Second, "the preStop sleep of the scenarios that have one")
	fs.DurationVar(&f.readinessPeriod, "readiness-period", time.Second, "periodSeconds of the readinessProbe (a TCP check of the served port)")
	fs.DurationVar(&f.readinessDelay, "readiness-initial-delay", 0, "initialDelaySeconds of the readinessProbe")
	fs.DurationVar(&f.minReady, "min-ready", 0, "minReadySeconds")
	fs.Float64Var(&f.rate, "rate", 300, "requests per second, spread over the client nodes")
	fs.DurationVar(&f.maxDuration, "max-duration", 45*time.Second, "longest a scenario may run; it ends 1.5s after its rollout completes")
	fs.StringVar(&f.mode, "mode", "http", "request mode: http (a new connection each), connect (TCP only) or http-keepalive")
	fs.Int64Var(&f.seed, "seed", 1, "seed for the node delays and endpoint picks, so a run can be repeated")
	fs.StringVar(&f.sweep, "sweep", "", "instead of the four scenarios, vary preStop with a readinessProbe on: prestop=LO..HI/STEP")
	fs.IntVar(&f.parallel, "parallel", 4, "scenarios run side by side")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fs.StringVar(&f.report, "report", "", "also write a self-contained HTML timeline of every scenario to this file")
	fs.StringVar(&f.observe, "observe", "unprivileged", "observers the diagnosis gets: unprivileged (watches and a listen prober) or conntrack (adds each request's endpoint)")
	fs.DurationVar(&f.probePeriod, "probe-period", 100*time.Millisecond, "how often the listen prober dials each pod: the resolution of what it sees")
	fs.DurationVar(&f.budget, "budget", 0, "propagation window the diagnosis assumes (default: the slowest node's delay plus one probe period, as measure would find it)")
	fs.BoolVar(&f.netns, "netns", false, "give every pod its own network namespace (Linux, root), so a stopped pod's address really vanishes and timeouts show too")
	return cmd
}

var (
	rangeRe   = regexp.MustCompile(`^([^.]+)\.\.([^.]+)$`)
	sweepRe   = regexp.MustCompile(`^prestop=([^.]+)\.\.([^/]+)/(.+)$`)
	percentRe = regexp.MustCompile(`^\d+%$`)
)

// scenarios validates the flags and builds what to run; every error names its flag.
func (f *labFlags) scenarios() ([]lab.Scenario, bool, error) {
	if f.output != "text" && f.output != "json" {
		return nil, false, usageError("--output %q: want text or json", f.output)
	}
	if f.replicas < 1 || f.replicas > 50 {
		return nil, false, usageError("--replicas %d: want 1 to 50", f.replicas)
	}
	if f.nodes < 1 || f.nodes > 20 {
		return nil, false, usageError("--nodes %d: want 1 to 20", f.nodes)
	}
	if f.rate <= 0 || f.rate > 5000 {
		return nil, false, usageError("--rate %g: want more than 0 and at most 5000 (the run must stay bounded)", f.rate)
	}
	if f.maxDuration <= 0 || f.maxDuration > 10*time.Minute {
		return nil, false, usageError("--max-duration %s: want more than 0 and at most 10m", f.maxDuration)
	}
	if f.parallel < 1 || f.parallel > 16 {
		return nil, false, usageError("--parallel %d: want 1 to 16", f.parallel)
	}
	for name, d := range map[string]time.Duration{"--container-start": f.containerStart, "--listen-delay": f.listenDelay,
		"--drain": f.drain, "--prestop": f.preStop, "--readiness-initial-delay": f.readinessDelay, "--min-ready": f.minReady} {
		if d < 0 {
			return nil, false, usageError("%s %s: must not be negative", name, d)
		}
	}
	if f.grace <= 0 {
		return nil, false, usageError("--grace %s: want more than 0", f.grace)
	}
	if f.readinessPeriod <= 0 {
		return nil, false, usageError("--readiness-period %s: want more than 0", f.readinessPeriod)
	}
	if f.observe != "unprivileged" && f.observe != "conntrack" {
		return nil, false, usageError("--observe %q: want unprivileged or conntrack", f.observe)
	}
	if f.probePeriod < 10*time.Millisecond || f.probePeriod > 5*time.Second {
		return nil, false, usageError("--probe-period %s: want 10ms to 5s", f.probePeriod)
	}
	if f.budget < 0 {
		return nil, false, usageError("--budget %s: must not be negative", f.budget)
	}
	surge, unavail := intstr.Parse(f.maxSurge), intstr.Parse(f.maxUnavailable)
	for name, v := range map[string]intstr.IntOrString{"--max-surge": surge, "--max-unavailable": unavail} {
		if v.Type == intstr.String && !percentRe.MatchString(v.StrVal) || v.Type == intstr.Int && v.IntVal < 0 {
			return nil, false, usageError("%s %q: want a number or a percentage such as 25%%", name, v.String())
		}
	}
	prop, err := parsePropagation(f.propagation)
	if err != nil {
		return nil, false, usageError("--propagation %q: %v", f.propagation, err)
	}
	mode := traffic.Mode(f.mode)
	if mode != traffic.ModeHTTP && mode != traffic.ModeConnect && mode != traffic.ModeKeepAlive {
		return nil, false, usageError("--mode %q: want http, connect or http-keepalive", f.mode)
	}
	base := lab.Base()
	nodes := f.nodes
	if len(prop.List) > 0 {
		nodes = len(prop.List)
	}
	base.Replicas, base.MaxSurge, base.MaxUnavailable = f.replicas, surge, unavail
	base.Propagation = prop.Delays(nodes, f.seed)
	base.ContainerStart, base.ListenDelay, base.Drain, base.Grace = f.containerStart, f.listenDelay, f.drain, f.grace
	base.MinReady, base.Rate, base.MaxDuration, base.Mode, base.Seed = f.minReady, f.rate, f.maxDuration, mode, f.seed
	base.Conntrack, base.ProbePeriod, base.Budget = f.observe == "conntrack", f.probePeriod, f.budget
	if f.netns {
		if err := lab.NetNSAvailable(); err != nil {
			return nil, false, usageError("%v", err)
		}
		base.NetNS = true
	}
	probe := lab.Probe{InitialDelay: f.readinessDelay, Period: f.readinessPeriod}
	var out []lab.Scenario
	sweep := f.sweep != ""
	if sweep {
		m := sweepRe.FindStringSubmatch(f.sweep)
		if m == nil {
			return nil, false, usageError("--sweep %q: want prestop=LO..HI/STEP, e.g. prestop=0s..8s/1s", f.sweep)
		}
		var ds [3]time.Duration
		for i := range ds {
			if ds[i], err = time.ParseDuration(m[i+1]); err != nil || ds[i] < 0 {
				return nil, false, usageError("--sweep %q: %q is not a duration", f.sweep, m[i+1])
			}
		}
		if ds[2] <= 0 || ds[1] < ds[0] || (ds[1]-ds[0])/ds[2] > 30 {
			return nil, false, usageError("--sweep %q: want LO <= HI and at most 30 steps", f.sweep)
		}
		out = lab.Sweep(base, probe, ds[0], ds[1], ds[2])
	} else {
		out = lab.Standard(base, f.preStop, probe)
	}
	for i := range out {
		if err := out[i].Validate(); err != nil {
			return nil, false, usageError("%v", err)
		}
	}
	return out, sweep, nil
}

func parsePropagation(s string) (lab.Propagation, error) {
	if m := rangeRe.FindStringSubmatch(s); m != nil {
		lo, err1 := time.ParseDuration(m[1])
		hi, err2 := time.ParseDuration(m[2])
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return lab.Propagation{}, errors.New("want a range of durations lo..hi with 0 <= lo <= hi")
		}
		return lab.Propagation{Low: lo, High: hi, Fixed: lo}, nil
	}
	if strings.Contains(s, ",") {
		var list []time.Duration
		for _, part := range strings.Split(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 {
				return lab.Propagation{}, fmt.Errorf("%q is not a duration", part)
			}
			list = append(list, d)
		}
		return lab.Propagation{List: list}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return lab.Propagation{}, errors.New("want a duration, a range lo..hi or a list a,b,c")
	}
	return lab.Propagation{Fixed: d}, nil
}

func (f *labFlags) run(ctx context.Context, s Streams) error {
	scs, sweep, err := f.scenarios()
	if err != nil {
		return err
	}
	stopProgress := progress(ctx, s.ErrOut, len(scs))
	results, err := lab.RunAll(ctx, scs, f.parallel)
	stopProgress()
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: ExitInterrupted, err: errors.New("interrupted before any scenario produced figures")}
		}
		return fmt.Errorf("lab: %w", err)
	}
	switch {
	case f.output == "json":
		err = lab.WriteJSON(s.Out, results)
	case sweep:
		err = lab.WriteSweep(s.Out, results)
	default:
		err = lab.WriteTable(s.Out, results)
	}
	if err != nil {
		return err
	}
	if f.report != "" {
		if err := writeReport(f.report, results); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return &exitError{code: ExitInterrupted}
	}
	return nil
}

func writeReport(path string, results []*lab.Result) error {
	return writeHTMLFile(path, func(w io.Writer) error { return lab.WriteHTML(w, results) })
}

// writeHTMLFile writes a report through a temporary file, so a failure
// leaves no half-written report behind.
func writeHTMLFile(path string, write func(io.Writer) error) error {
	var b strings.Builder
	if err := write(&b); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path+".tmp", []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		os.Remove(path + ".tmp")
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// progress shows elapsed time on a terminal while scenarios run; it writes
// nothing when stderr is not a terminal.
func progress(ctx context.Context, w io.Writer, n int) func() {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\x1b[Krunning %d scenarios... %ds", n, int(time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(done); <-stopped }
}
