package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollguard/rollguard/pkg/measure"
)

// newCanaryCommand is the server of measure's canary pods.
func newCanaryCommand(s Streams) *cobra.Command {
	var listen string
	var hold time.Duration
	cmd := &cobra.Command{
		Use:    "canary",
		Short:  "Run measure's canary server (run by 'rollguard measure' in its canary pods)",
		Hidden: true,
		Long: `Canary is run by 'rollguard measure' in the pods of its canary Deployment; it is not for
direct use. It answers the readinessProbe (GET /readyz), counts the probers' requests per node
(GET /m/NODE), and is its own preStop hook (GET /prestop): it notes when the hook began and keeps
the pod serving until measure releases it (POST /release) or --hold is over. GET /state returns
what it saw. It exits at once on SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hold <= 0 || hold > time.Hour {
				return usageError("--hold %s: want more than 0 and at most 1h", hold)
			}
			return runCanary(cmd.Context(), s, listen, hold)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", fmt.Sprintf(":%d", measure.CanaryPort), "address to serve on")
	cmd.Flags().DurationVar(&hold, "hold", time.Minute, "longest the preStop hook keeps the pod serving")
	return cmd
}

func runCanary(ctx context.Context, s Streams, listen string, hold time.Duration) error {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(term)
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return usageError("--listen %s: %v", listen, err)
	}
	srv := &http.Server{Handler: measure.NewCanary(hold), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	defer srv.Close()
	fmt.Fprintf(s.Out, "rollguard canary listening on %s\n", l.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", l.Addr(), err)
	case <-term:
	case <-ctx.Done():
	}
	return nil
}
