package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/internal/version"
	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/live"
	"github.com/rollguard/rollguard/pkg/measure"
	"github.com/rollguard/rollguard/pkg/rules"
)

type measureFlags struct {
	kubeconfig, kubeContext, namespace string
	keepNamespace                      bool
	from, image                        string
	samples, canaries                  int
	rate                               float64
	hold, jitter, timeout, agentTimout time.Duration
	output, writeConfig                string
	cleanup                            bool
}

// DefaultMeasureNamespace is where measure runs unless told otherwise: a
// namespace of its own, created and deleted.
const DefaultMeasureNamespace = "rollguard-measure"

func newMeasureCommand(s Streams) *cobra.Command {
	f := &measureFlags{}
	cmd := &cobra.Command{
		Use:   "measure",
		Short: "Measure how long each node takes to apply an endpoint change, and the preStop delay that covers it",
		Long: `Measure finds the propagation budget from the cluster itself instead of a guess. In a namespace
of its own (-n, created and deleted; an existing one with --keep-namespace, left in place) it deploys a canary
Deployment of --canaries pods behind a Service, and one prober pod per node that sends new
connections to the Service's ClusterIP through that node's kube-proxy, --rate a second, each
request naming its node. Then it deletes one canary at a time, --samples times:

  removal   from the deleted pod's preStop call to the last request each node sent it
            (the canary's preStop hook keeps it serving meanwhile): the delay a preStop
            must cover for that node;
  addition  from the replacement pod's first readiness answer to the first request each
            node sent it.

Both are read in the canary's own clock, so node clocks do not matter. Before each deletion
it waits a random time up to --jitter, so deletions fall at every phase of kube-proxy's sync
loop. The result is a table per node (p50, p99, max), a verdict on how evenly the nodes apply
changes, and the recommended preStop: the slowest node's p99 removal x 1.5, rounded up to the
second. --write-config puts it in a rollguard config file as propagationBudget, which audit,
fix and verify read.

The pods run --image (the rollguard image of this release by default). Everything measure
creates is labelled app.kubernetes.io/managed-by=rollguard-measure and removed at the end, on
Ctrl-C and on --timeout; --cleanup removes what a killed run left. The permissions it needs
are in deploy/rbac/rollguard-measure.yaml.

Exit status: 0 when every sample was taken, 2 when the run could not measure (no permission,
no schedulable node, pods that cannot start, --timeout: partial figures are printed), 130 on
Ctrl-C (after the partial figures).`,
		Example: `  # About a minute: the per-node table and the recommended preStop
  rollguard measure -n rollguard-probe

  # More samples, as JSON
  rollguard measure -n rollguard-probe --samples 30 -o json > propagation.json

  # Write the budget to a config file (other settings are kept), then audit against it
  rollguard measure -n rollguard-probe --write-config rollguard.yaml
  rollguard audit --config rollguard.yaml ./deploy/

  # In a namespace you were given (it stays; only what measure made is removed)
  rollguard measure -n team-sandbox --keep-namespace

  # Remove what a killed run left
  rollguard measure --cleanup -n rollguard-probe`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), s) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVarP(&f.namespace, "namespace", "n", DefaultMeasureNamespace, "namespace to measure in: created and deleted, unless --keep-namespace")
	fs.BoolVar(&f.keepNamespace, "keep-namespace", false, "measure in an existing namespace and leave it in place (only what measure created there is removed)")
	fs.StringVar(&f.from, "from", "all-nodes", "nodes to probe from: all-nodes, or node names separated by commas")
	fs.StringVar(&f.image, "image", "", "the canaries' and probers' image (default "+ImageRepository+":VERSION of this release)")
	fs.IntVar(&f.samples, "samples", 10, "canary deletions to measure, one at a time")
	fs.IntVar(&f.canaries, "canaries", 2, "canary replicas (at least 2)")
	fs.Float64Var(&f.rate, "rate", 100, "requests per second from each node (sets the resolution: canaries/rate)")
	fs.DurationVar(&f.hold, "max-propagation", 30*time.Second, "longest latency measured: a deleted canary serves this long at most")
	fs.DurationVar(&f.jitter, "jitter", 2*time.Second, "wait a random time up to this before each deletion (0: none)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.DurationVar(&f.agentTimout, "agent-timeout", 2*time.Minute, "how long the pods may take to start (image pull included)")
	fs.StringVarP(&f.output, "output", "o", "text", "text or json (schema "+measure.SchemaVersion+")")
	fs.StringVar(&f.writeConfig, "write-config", "", "set propagationBudget in this rollguard config file to the recommended preStop (created if missing; other settings kept)")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove what killed runs left in the namespace (and the namespace, if measure created it), and exit")
	return cmd
}

func (f *measureFlags) run(ctx context.Context, s Streams) error {
	if f.output != "text" && f.output != "json" {
		return usageError("-o %q: want text or json", f.output)
	}
	src, err := live.Resolve(live.Options{Kubeconfig: f.kubeconfig, Context: f.kubeContext, Namespace: f.namespace})
	if err != nil {
		return usageError("%v", err)
	}
	if f.cleanup {
		cs, err := kubernetes.NewForConfig(src.Config)
		if err != nil {
			return usageError("%v", err)
		}
		if err := measure.Cleanup(ctx, cs, src.Namespace, "", !f.keepNamespace); err != nil {
			return usageError("%v", err)
		}
		return nil
	}
	// Read the config file before measuring: a file that cannot be
	// edited is found in a second, not after a minute of measuring.
	var before []byte
	if f.writeConfig != "" {
		before, err = os.ReadFile(f.writeConfig)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return usageError("--write-config: %v", err)
		}
		if _, err := config.SetPropagationBudget(before, time.Second, "", rules.Default()); err != nil {
			return usageError("--write-config %s: %v", f.writeConfig, err)
		}
	}
	image, err := imageFor(f.image, "its pods")
	if err != nil {
		return err
	}
	nodes, err := nodeList(f.from)
	if err != nil {
		return err
	}
	opts := measure.Options{Config: src.Config, Namespace: src.Namespace, KeepNamespace: f.keepNamespace, Image: image, Nodes: nodes,
		Samples: f.samples, Rate: f.rate, Canaries: f.canaries, Hold: f.hold, Jitter: f.jitter, Timeout: f.timeout, AgentTimeout: f.agentTimout}
	if isTerminal(s.ErrOut) {
		start := time.Now()
		opts.Progress = func(format string, args ...any) {
			fmt.Fprintf(s.ErrOut, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	rep, err := measure.Run(ctx, opts)
	if rep != nil {
		if werr := writeOutput(s.Out, f.output, rep); werr != nil {
			return werr
		}
		if f.writeConfig != "" && err == nil && ctx.Err() == nil && rep.PreStop > 0 {
			note := fmt.Sprintf("rollguard measure, %s: %s", rep.End.UTC().Format("2006-01-02"), rep.Formula)
			out, cerr := config.SetPropagationBudget(before, rep.PreStop, note, rules.Default())
			if cerr == nil {
				cerr = writeAtomic(f.writeConfig, out)
			}
			if cerr != nil {
				return &exitError{code: ExitUsage, err: fmt.Errorf("--write-config %s: %w", f.writeConfig, cerr)}
			}
			fmt.Fprintf(s.ErrOut, "wrote propagationBudget: %s to %s\n", rep.PreStop, f.writeConfig)
		}
	}
	switch {
	case ctx.Err() != nil:
		return &exitError{code: ExitInterrupted, err: errors.New("interrupted: the figures above are partial; everything measure created was removed")}
	case err != nil:
		if rep != nil && f.writeConfig != "" {
			err = fmt.Errorf("%w (%s was not changed)", err, f.writeConfig)
		}
		return &exitError{code: ExitUsage, err: err}
	}
	return nil
}

// writeOutput writes an in-cluster command's report: indented JSON with
// -o json, else its text.
func writeOutput(w io.Writer, output string, rep interface{ WriteText(io.Writer) error }) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(w)
}

// imageFor is --image, or the release image of this build; a development
// build or a pseudo-version has none, and says how to make one (for names
// what runs it: "its agents").
func imageFor(flag, forWhat string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	v := version.Get()
	if v == "dev" || strings.Contains(v, "-0.") {
		return "", usageError("this build of rollguard (%s) has no release image for %s: build one with the repository's Dockerfile, push it where the cluster can pull it, and pass --image", v, forWhat)
	}
	return ImageRepository + ":" + v, nil
}

// nodeList parses --from: all-nodes, or node names separated by commas.
func nodeList(from string) ([]string, error) {
	if from == "all-nodes" {
		return nil, nil
	}
	var nodes []string
	for _, n := range strings.Split(from, ",") {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return nil, usageError("--from %q: want all-nodes or node names", from)
	}
	return nodes, nil
}
