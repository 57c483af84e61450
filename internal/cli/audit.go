package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/internal/version"
	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/live"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/render"
	"github.com/rollguard/rollguard/pkg/report"
	"github.com/rollguard/rollguard/pkg/rules"
)

// auditFlags are the audit command's flags; ruleFlags are shared with
// commands that run the rules.
type auditFlags struct {
	ruleFlags
	output string
	failOn string
	color  string

	values []string // helm -f, for chart folders
	set    []string // helm --set, for chart folders

	cluster        bool
	kubeconfig     string
	kubeContext    string
	allNamespaces  bool
	selector       string
	requestTimeout time.Duration
}

type ruleFlags struct {
	configPath        string
	propagationBudget time.Duration
	drainAllowance    time.Duration
	namespace         string
	assumeServed      bool
	disable           []string
}

func (f *ruleFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.configPath, "config", "", "configuration file (rollguard.yaml): budget, severities, disabled rules, ignored paths")
	fs.DurationVar(&f.propagationBudget, "propagation-budget", 5*time.Second, "how long an endpoint change takes to reach every node's kube-proxy; the preStop delay must cover it")
	fs.DurationVar(&f.drainAllowance, "drain-allowance", 5*time.Second, "time the app needs after SIGTERM to finish in-flight requests")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace of objects that name none (default \"default\"); with --cluster, the namespace to read (default: the context's)")
	fs.BoolVar(&f.assumeServed, "assume-served", false, "treat workloads whose containers declare ports as served even when no Service in the input selects them")
	fs.StringSliceVar(&f.disable, "disable", nil, "rules to skip, by ID or name (comma-separated)")
}

// resolved is what rule flags and the config file come to.
type resolved struct {
	reg      *rules.Registry
	opts     rules.Options
	cfg      *config.Config
	modelOpt model.Options
}

// resolve merges the config file with the flags; a flag given on the
// command line wins over the file, the file over the defaults.
func (f *ruleFlags) resolve(cmd *cobra.Command) (*resolved, error) {
	reg := rules.Default()
	cfg := &config.Config{Disabled: map[*rules.Rule]bool{}, Severity: map[*rules.Rule]rules.Severity{}}
	if f.configPath != "" {
		c, err := config.Load(f.configPath, reg)
		if err != nil {
			return nil, &exitError{code: ExitUsage, err: err}
		}
		cfg = c
	}
	settings := rules.Settings{PropagationBudget: f.propagationBudget, DrainAllowance: f.drainAllowance}
	if !cmd.Flags().Changed("propagation-budget") && cfg.PropagationBudget > 0 {
		settings.PropagationBudget = cfg.PropagationBudget
	}
	if !cmd.Flags().Changed("drain-allowance") && cfg.DrainAllowance > 0 {
		settings.DrainAllowance = cfg.DrainAllowance
	}
	if settings.PropagationBudget <= 0 {
		return nil, usageError("--propagation-budget must be positive, got %s", settings.PropagationBudget)
	}
	if settings.DrainAllowance < 0 {
		return nil, usageError("--drain-allowance must not be negative, got %s", settings.DrainAllowance)
	}
	for _, key := range f.disable {
		r := reg.Lookup(strings.TrimSpace(key))
		if r == nil {
			return nil, usageError("--disable: unknown rule %q (run 'rollguard rules' for the list)", key)
		}
		cfg.Disabled[r] = true
	}
	return &resolved{
		reg:      reg,
		cfg:      cfg,
		opts:     rules.Options{Settings: settings, Disabled: cfg.Disabled, Severity: cfg.Severity},
		modelOpt: model.Options{Namespace: cmp.Or(f.namespace, "default"), AssumeServed: f.assumeServed, TelemetryPorts: cfg.TelemetryPorts},
	}, nil
}

func newAuditCommand(s Streams) *cobra.Command {
	f := &auditFlags{}
	cmd := &cobra.Command{
		Use:   "audit PATH... | -",
		Short: "Find workloads whose rolling updates lose connections",
		Long: `Audit reads Kubernetes manifests and reports every workload exposed to a lossy rolling
update, grouped by workload, with the rule, the case it causes, what happens during a
rollout and the fix.

Folders are read recursively (.yaml, .yml, .json). A Helm chart folder (Chart.yaml) is
rendered with your helm (helm template, values from -f and --set), and a kustomization
folder (kustomization.yaml) is built with your kustomize (or kubectl kustomize), both
where they are given and where a walk finds them; findings then name the template, or
the kustomization, without a line. "-" reads standard input, so rendered output can be
piped in too. Rules about serving traffic fire only for workloads a Service in the input
selects (or, with --assume-served, whose containers declare ports), never for Jobs and
CronJobs.

Exit status: 0 when nothing at or above --fail-on is found, 1 when something is, 2 on a
usage or input error (a chart that fails to render, a document that is not valid YAML...;
the rest of the input is still audited and reported, and the last line of standard error
says what was left out).

Environment: ROLLGUARD_HELM and ROLLGUARD_KUSTOMIZE name the helm and kustomize binaries
to run instead of the ones in PATH.`,
		Example: `  # Audit a folder of manifests
  rollguard audit ./deploy/

  # Audit a Helm chart as rendered (release name: the folder's), with production values
  rollguard audit -f values-prod.yaml --set replicaCount=3 ./charts/shop

  # Audit a Kustomize overlay as built
  rollguard audit overlays/prod

  # Or render them yourself and pipe the output in
  helm template shop ./charts/shop | rollguard audit -
  kustomize build overlays/prod | rollguard audit -

  # SARIF for GitHub code scanning, failing on warnings too
  rollguard audit -o sarif --fail-on warning ./deploy/ > rollguard.sarif

  # Size the preStop delay from a measured propagation time
  rollguard audit --propagation-budget 8s ./deploy/

  # What is running: the current context's namespace, or every namespace
  rollguard audit --cluster
  rollguard audit --cluster --context prod -A -l team=payments`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, s, args)
		},
	}
	f.ruleFlags.add(cmd)
	cmd.Flags().BoolVar(&f.cluster, "cluster", false, "audit the live cluster of the kubeconfig instead of files (needs the read-only ClusterRole in deploy/rbac/rollguard-audit.yaml)")
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "with --cluster: kubeconfig file (default: KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&f.kubeContext, "context", "", "with --cluster: kubeconfig context (default: the current one)")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "with --cluster: read every namespace")
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "with --cluster: only workloads with these labels (e.g. app=web,tier!=db)")
	cmd.Flags().DurationVar(&f.requestTimeout, "request-timeout", 30*time.Second, "with --cluster: give up reading the cluster after this long")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().StringVar(&f.failOn, "fail-on", "error", "lowest severity that makes the exit status 1: error, warning or info")
	cmd.Flags().StringVar(&f.color, "color", "auto", "colour text output: auto (on a terminal), always or never")
	cmd.Flags().StringArrayVarP(&f.values, "values", "f", nil, "values file for the Helm charts in the input, as helm template -f (repeatable; later files win)")
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "value for the Helm charts in the input, as helm template --set: key=value, comma-separated pairs allowed (repeatable; applied after -f)")
	return cmd
}

func (f *auditFlags) validate(cmd *cobra.Command, args []string) error {
	switch {
	case f.cluster && len(args) > 0:
		return usageError("--cluster reads the cluster, not files: drop %s, or drop --cluster", strings.Join(args, " "))
	case !f.cluster && len(args) == 0:
		return usageError("no input: give files or folders, - to read standard input, or --cluster (see 'rollguard audit --help')")
	case f.cluster && f.requestTimeout <= 0:
		return usageError("--request-timeout %s: want more than 0", f.requestTimeout)
	}
	if !f.cluster {
		for _, name := range []string{"kubeconfig", "context", "all-namespaces", "selector", "request-timeout"} {
			if cmd.Flags().Changed(name) {
				return usageError("--%s goes with --cluster", name)
			}
		}
	}
	if f.cluster && (len(f.values) > 0 || len(f.set) > 0) {
		return usageError("--values and --set render Helm charts given as folders; --cluster reads no charts")
	}
	for _, v := range f.values {
		if v == "-" {
			return usageError("--values -: helm is not given rollguard's standard input; name a values file")
		}
		if strings.Contains(v, "://") {
			continue // a URL, which helm fetches itself
		}
		if _, err := os.Stat(v); err != nil {
			return usageError("--values %s: %v", v, unwrapPath(err))
		}
	}
	known := false
	for _, name := range report.Formats {
		known = known || f.output == name
	}
	if !known {
		return usageError("--output %q: want one of %s", f.output, strings.Join(report.Formats, ", "))
	}
	switch f.color {
	case "auto", "always", "never":
	default:
		return usageError("--color %q: want auto, always or never", f.color)
	}
	return nil
}

func (f *auditFlags) run(cmd *cobra.Command, s Streams, args []string) error {
	if err := f.validate(cmd, args); err != nil {
		return err
	}
	res, err := f.resolve(cmd)
	if err != nil {
		return err
	}
	failOn := rules.Error
	if res.cfg.FailOn != 0 {
		failOn = res.cfg.FailOn
	}
	if cmd.Flags().Changed("fail-on") || res.cfg.FailOn == 0 {
		if failOn, err = rules.ParseSeverity(f.failOn); err != nil {
			return usageError("--fail-on: %v", err)
		}
	}

	var loaded *manifest.Result
	if f.cluster {
		if loaded, err = f.readCluster(cmd.Context(), res); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
	} else {
		charts := 0
		ropts := render.Options{Values: f.values, Set: f.set, Namespace: f.namespace}
		loaded = manifest.Load(args, manifest.Options{Stdin: s.In, Ignore: res.cfg.IgnorePaths,
			Render: func(u render.Unit) ([]byte, error) {
				if u.Tool == render.Helm {
					charts++
				}
				return render.Render(cmd.Context(), u, ropts)
			}})
		if charts == 0 && (len(f.values) > 0 || len(f.set) > 0) {
			// Values that reach no chart would be silently ignored.
			return usageError("--values and --set are for Helm charts, and the input holds none: give the chart folder (the one with Chart.yaml)")
		}
	}
	res.modelOpt.Others = loaded.Others
	// With -l only some workloads are read: Services and budgets that
	// select none of them belong to other teams, not to this audit.
	res.modelOpt.Partial = f.cluster && f.selector != ""
	m := model.Build(loaded.Objects, res.modelOpt)
	rep := res.reg.Run(m, res.opts)
	in := &report.Input{Report: rep, Load: loaded, Model: m, Settings: res.opts.Settings,
		FailOn: failOn, Version: version.Get(), Namespace: res.modelOpt.Namespace}
	color := f.color == "always" || (f.color == "auto" && isTerminal(s.Out))
	if err := report.Write(s.Out, f.output, in, color); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	for _, e := range loaded.Errors {
		fmt.Fprintf(s.ErrOut, "error: %v\n", e)
	}
	if len(loaded.Errors) > 0 {
		msg := fmt.Sprintf("%d input error(s); nothing was left out of the audit", len(loaded.Errors))
		if lost := manifest.LeftOut(loaded.Errors); lost != "" {
			msg = fmt.Sprintf("%d input error(s); left out of the audit: %s; the rest of the input was audited", len(loaded.Errors), lost)
		}
		return &exitError{code: ExitUsage, err: errors.New(msg)}
	}
	for _, fd := range rep.Findings {
		if in.Failing(fd) {
			return &exitError{code: ExitFindings}
		}
	}
	return nil
}

// readCluster lists the objects of the live cluster; the model's default
// namespace becomes the one read.
func (f *auditFlags) readCluster(ctx context.Context, res *resolved) (*manifest.Result, error) {
	opts := live.Options{Kubeconfig: f.kubeconfig, Context: f.kubeContext, Namespace: f.namespace,
		AllNamespaces: f.allNamespaces, Selector: f.selector, Timeout: f.requestTimeout}
	src, err := live.Resolve(opts)
	if err != nil {
		return nil, err
	}
	res.modelOpt.Namespace = src.Namespace
	return live.Load(ctx, src, opts)
}

// unwrapPath drops the *fs.PathError wrapper whose path the message names
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
