package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/pkg/agent"
)

type agentFlags struct {
	listen string
	maxRun time.Duration
	grace  time.Duration
}

// Bounds on the agent's flags: its life, and how long it serves its
// records after being told to stop.
const (
	maxAgentLife  = 24 * time.Hour
	maxAgentGrace = 10 * time.Minute
	// agentStopLimit bounds waiting for requests in flight at shutdown:
	// more than a request's longest timeouts.
	agentStopLimit = 2*agent.MaxRequestTimeout + 10*time.Second
)

// newAgentCommand is verify's per-node agent: verify starts one pod per
// node running it and drives it through the API server's pod proxy.
func newAgentCommand(s Streams) *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run verify's per-node traffic agent (run by 'rollguard verify' in its agent pods)",
		Long: `Agent is run by 'rollguard verify' inside the agent pods it starts, one per node; it is not for
direct use. It serves an HTTP API that verify reaches through the API server's pod proxy: on
POST /start it sends open-loop traffic to a Service's ClusterIP through the node's kube-proxy
and dials the pods verify names (POST /probe) to see when each accepts connections; on
POST /stop it finishes the requests in flight, and GET /records returns every request and
every probe event. GET /healthz is its readinessProbe.

It runs one run in its life. On SIGTERM (or Ctrl-C), or when --max-run is over, it stops the
run as POST /stop does, keeps serving the records for --shutdown-grace, then exits 0. It
prints one line when it starts and errors on stderr, nothing per request.`,
		Example: `  # What an agent pod runs
  rollguard agent --listen :8642

  # By hand, to try the API on this machine
  rollguard agent --listen 127.0.0.1:8642 --max-run 10m &
  curl -s -XPOST localhost:8642/start -d '{"target":"127.0.0.1:8080","mode":"http","rate":50,"maxDurationNs":5000000000}'
  curl -s -XPOST localhost:8642/stop; curl -s localhost:8642/records | tail -1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), s) },
	}
	cmd.Flags().StringVar(&f.listen, "listen", fmt.Sprintf(":%d", agent.DefaultPort), "address to serve the agent's API on")
	cmd.Flags().DurationVar(&f.maxRun, "max-run", 2*time.Hour, "longest the agent lives: then it stops and exits, and it refuses a run that would not end by then")
	cmd.Flags().DurationVar(&f.grace, "shutdown-grace", 20*time.Second, "after SIGTERM, how long the records are still served before the agent exits")
	return cmd
}

func (f *agentFlags) run(ctx context.Context, s Streams) error {
	if f.maxRun <= 0 || f.maxRun > maxAgentLife {
		return usageError("--max-run %s: want more than 0 and at most %s", f.maxRun, maxAgentLife)
	}
	if f.grace < 0 || f.grace > maxAgentGrace {
		return usageError("--shutdown-grace %s: want 0 to %s", f.grace, maxAgentGrace)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(term)
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return usageError("--listen %s: %v", f.listen, err)
	}
	a := agent.NewServer(f.maxRun)
	defer a.Close()
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	defer srv.Close()
	fmt.Fprintf(s.Out, "rollguard agent listening on %s; it exits on SIGTERM or in %s\n", l.Addr(), f.maxRun)

	life := time.NewTimer(f.maxRun)
	defer life.Stop()
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	case <-term:
	case <-ctx.Done():
	case <-life.C:
	}
	// A second signal cuts the stop and the grace short; registering anew
	// keeps the first one from counting twice.
	signal.Stop(term)
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(again)
	stopCtx, cancel := context.WithTimeout(context.Background(), agentStopLimit)
	defer cancel()
	second, exited := make(chan struct{}), make(chan struct{})
	defer close(exited)
	go func() {
		select {
		case <-again:
			close(second)
			cancel()
		case <-exited:
		}
	}()
	if _, err := a.Stop(stopCtx); err != nil && !errors.Is(err, agent.ErrNotStarted) {
		fmt.Fprintf(s.ErrOut, "rollguard agent: stopping the run: %v\n", err)
	}
	grace := time.NewTimer(f.grace)
	defer grace.Stop()
	select {
	case <-grace.C:
	case <-second:
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx) // a records stream still going is cut by the deferred Close
	return nil
}
