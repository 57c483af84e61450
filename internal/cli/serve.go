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
)

type serveFlags struct {
	listen        string
	listenDelay   time.Duration
	shutdownDelay time.Duration
	drain         time.Duration
}

// newServeCommand is the test app the e2e tier and verify run as pods: an
// HTTP server whose start-up and shutdown are flags, so one image can play
// each case.
func newServeCommand(s Streams) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a test HTTP server whose start-up and shutdown timing are flags",
		Long: `Serve runs the test app of rollguard's end-to-end tests: an HTTP server that answers / with
its hostname and /healthz with "ok". It starts listening --listen-delay after it starts (so a
pod without a readinessProbe shows Case 2), and on SIGTERM it keeps serving for
--shutdown-delay, then closes its listener and gives requests in flight --drain to finish
(with no delay it shows Case 1).`,
		Example: `  # An app that listens 2s after start and exits at once on SIGTERM
  rollguard serve --listen :8080 --listen-delay 2s

  # An app that drains gracefully: 5s of serving after SIGTERM, then 10s for requests in flight
  rollguard serve --shutdown-delay 5s --drain 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), s) },
	}
	cmd.Flags().StringVar(&f.listen, "listen", ":8080", "address to listen on")
	cmd.Flags().DurationVar(&f.listenDelay, "listen-delay", 0, "wait this long after starting before listening")
	cmd.Flags().DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "keep serving this long after SIGTERM")
	cmd.Flags().DurationVar(&f.drain, "drain", 5*time.Second, "after closing the listener, time for requests in flight")
	return cmd
}

func (f *serveFlags) run(ctx context.Context, s Streams) error {
	for name, d := range map[string]time.Duration{"--listen-delay": f.listenDelay, "--shutdown-delay": f.shutdownDelay, "--drain": f.drain} {
		if d < 0 {
			return usageError("%s %s: must not be negative", name, d)
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(term)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pod", host)
		fmt.Fprintln(w, host)
	})
	select {
	case <-time.After(f.listenDelay):
	case <-term:
		return nil // stopped before it ever listened
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", f.listen, err)
	}
	fmt.Fprintf(s.ErrOut, "serving on %s\n", l.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-term:
	}
	time.Sleep(f.shutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
