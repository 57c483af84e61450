package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/rollguard/rollguard/pkg/live"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/traffic"
	"github.com/rollguard/rollguard/pkg/verify"
)

type verifyFlags struct {
	kubeconfig, kubeContext, namespace string
	service, port                      string
	rate                               float64
	from                               string
	image                              string
	mode                               string
	trigger                            string
	timeout, settle, warmup            time.Duration
	agentTimeout                       time.Duration
	budget, probePeriod                time.Duration
	maxFailures                        int
	output                             string
	report                             string
	cleanup                            bool
	privileged                         bool
}

// ImageRepository is where release images of rollguard are published; the
// agents run the image of the release that runs verify.
const ImageRepository = "ghcr.io/rollguard/rollguard"

func newVerifyCommand(s Streams) *cobra.Command {
	f := &verifyFlags{}
	cmd := &cobra.Command{
		Use:   "verify KIND/NAME",
		Short: "Roll a workload under traffic on a real cluster, and prove it lost nothing, or say which case lost what",
		Long: `Verify rolls a Deployment, StatefulSet or DaemonSet while agents on the cluster's nodes send
traffic to its Service's ClusterIP, through kube-proxy, as real callers do. Every request is
recorded. Pod and EndpointSlice watches and a listen prober in each agent (dialing every pod's
address each --probe-period) give the timeline; each failed request is attributed to Case 1
(an old pod that stopped listening while a node still routed to it), Case 2 (a new pod in the
endpoints before it listened) or other, with the rule whose fix prevents it. Nothing shows when
each node's kube-proxy applied a change, so the diagnosis assumes the propagation window
--budget (measure it, or use the audit's).

The agents are pods named rollguard-verify-*, one per node, running --image (the rollguard
image of this release by default; build your own with the repository's Dockerfile). verify talks
to them through the API server's pod proxy, so it runs from anywhere kubectl does. Agents' clocks
are compared with verify's through that proxy, and the bound is printed. Everything verify
creates is labelled app.kubernetes.io/managed-by=rollguard-verify and deleted at the end, on
Ctrl-C and on timeout; --cleanup removes what a killed run left.

Exit status: 0 when at most --max-failures requests failed, 1 when more did, 2 when the run
could not prove anything (no such workload, permission denied, the Service failing before the
rollout, a rollout stuck past --timeout), 130 on Ctrl-C (after a partial report). The
permissions it needs are in deploy/rbac/rollguard-verify.yaml.`,
		Example: `  # Restart it under traffic and give the verdict
  rollguard verify deployment/orders -n shop

  # More traffic, from two named nodes, with a timeline picture
  rollguard verify deployment/orders -n shop --rate 300 --from node-a,node-b --report verify.html

  # As JSON for a CI step
  rollguard verify deployment/orders -n shop -o json > verify.json

  # A StatefulSet behind a read Service, TCP connects only
  rollguard verify statefulset/db -n shop --service db-read --port 5432 --mode connect

  # CI: watch the rollout that kubectl apply starts
  kubectl apply -f deploy.yaml && rollguard verify deployment/orders -n shop --trigger none

  # Remove the agents of a run that was killed
  rollguard verify --cleanup -n shop`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.cleanup {
				if len(args) > 0 {
					return usageError("--cleanup takes no KIND/NAME")
				}
				return nil
			}
			if len(args) != 1 {
				return usageError("verify takes one KIND/NAME, e.g. deployment/orders (see 'rollguard verify --help')")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return f.run(cmd.Context(), s, args) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the workload (default: the context's)")
	fs.StringVar(&f.service, "service", "", "the Service callers use, when several select the pods")
	fs.StringVar(&f.port, "port", "", "the Service port (number or name), when it has several")
	fs.Float64Var(&f.rate, "rate", 100, "requests per second, over all agents")
	fs.StringVar(&f.from, "from", "all-nodes", "nodes to send from: all-nodes, or node names separated by commas")
	fs.StringVar(&f.image, "image", "", "the agents' image (default "+ImageRepository+":VERSION of this release)")
	fs.StringVar(&f.mode, "mode", string(traffic.ModeHTTP), "http (a new connection per request), http-keepalive, or connect (TCP only)")
	fs.StringVar(&f.trigger, "trigger", "restart", "restart (as kubectl rollout restart), image=CONTAINER=IMAGE, or none (wait for the next rollout)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long the rollout (or, with --trigger none, the wait for it) may take")
	fs.DurationVar(&f.settle, "settle", 10*time.Second, "traffic after the rollout completes: old pods are still terminating")
	fs.DurationVar(&f.warmup, "warmup", 3*time.Second, "traffic without a failure required before the rollout")
	fs.DurationVar(&f.agentTimeout, "agent-timeout", 2*time.Minute, "how long the agents may take to start (image pull included)")
	fs.DurationVar(&f.budget, "budget", rules.DefaultSettings().PropagationBudget, "how long a node may take to apply an endpoint change (measured, or your audit's)")
	fs.DurationVar(&f.probePeriod, "probe-period", 100*time.Millisecond, "how often each agent dials each pod's address")
	fs.IntVar(&f.maxFailures, "max-failures", 0, "failed requests allowed before the exit status is 1")
	fs.StringVarP(&f.output, "output", "o", "text", "text or json (schema "+verify.SchemaVersion+")")
	fs.StringVar(&f.report, "report", "", "also write a self-contained HTML timeline of the rollout to this file")
	fs.BoolVar(&f.privileged, "privileged-agents", false, "run the agents on their nodes' network as root with NET_ADMIN, to read from conntrack which pod each request went to (exact attribution; not for PodSecurity restricted or baseline namespaces)")
	fs.BoolVar(&f.cleanup, "cleanup", false, "remove the agents left by killed runs in the namespace, and exit")
	return cmd
}

func (f *verifyFlags) run(ctx context.Context, s Streams, args []string) error {
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
		if err := verify.Cleanup(ctx, cs, src.Namespace, ""); err != nil {
			return usageError("%v", err)
		}
		return nil
	}
	kind, name, err := verify.ParseTarget(args[0])
	if err != nil {
		return usageError("%v", err)
	}
	image, err := imageFor(f.image, "its agents")
	if err != nil {
		return err
	}
	nodes, err := nodeList(f.from)
	if err != nil {
		return err
	}
	opts := verify.Options{Config: src.Config, Namespace: src.Namespace, Kind: kind, Name: name, Service: f.service, Port: f.port,
		Rate: f.rate, Nodes: nodes, Image: image, Mode: traffic.Mode(f.mode), Trigger: f.trigger, Warmup: f.warmup,
		Settle: f.settle, Timeout: f.timeout, AgentTimeout: f.agentTimeout, Budget: f.budget, ProbePeriod: f.probePeriod,
		PrivilegedAgents: f.privileged}
	if isTerminal(s.ErrOut) {
		start := time.Now()
		opts.Progress = func(format string, args ...any) {
			fmt.Fprintf(s.ErrOut, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	rep, err := verify.Run(ctx, opts)
	if rep != nil {
		if werr := writeOutput(s.Out, f.output, rep); werr != nil {
			return werr
		}
		if f.report != "" {
			if werr := writeHTMLFile(f.report, rep.WriteHTML); werr != nil {
				return werr
			}
		}
	}
	var in *verify.InputError
	var stuck *verify.StuckError
	switch {
	case ctx.Err() != nil:
		return &exitError{code: ExitInterrupted, err: errors.New("interrupted: the report above is partial; the agents were removed")}
	case errors.As(err, &in), errors.As(err, &stuck):
		return &exitError{code: ExitUsage, err: err}
	case err != nil:
		return &exitError{code: ExitUsage, err: err}
	case rep.Failed > f.maxFailures:
		return &exitError{code: ExitFindings}
	}
	return nil
}
