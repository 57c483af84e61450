// Package cli implements rollguard's command line: one file per
// subcommand, each mapping flags onto the library packages. The whole CLI
// runs in-process through Main, so tests drive it without a subprocess.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rollguard/rollguard/internal/version"
)

// Streams are the command's standard input and outputs.
type Streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Exit codes, the same for every command.
const (
	ExitOK       = 0 // nothing at or above --fail-on
	ExitFindings = 1 // findings at or above --fail-on
	ExitUsage    = 2 // bad flags, bad input, unreachable cluster
)

// exitError makes a command exit with a code; a nil err prints nothing.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks an error in how the command was called.
func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// Main runs rollguard with args and returns the process exit code; Ctrl-C
// cancels the run.
func Main(args []string, s Streams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return MainContext(ctx, args, s)
}

// MainContext is Main with the caller's context: cancelling it is what
// Ctrl-C does.
func MainContext(ctx context.Context, args []string, s Streams) int {
	err := Run(ctx, s, args)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(s.ErrOut, "error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(s.ErrOut, "error: %v\n", err)
	return ExitUsage
}

// Run executes one command line.
func Run(ctx context.Context, s Streams, args []string) error {
	root := NewRootCommand(s)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// NewRootCommand builds the command tree.
func NewRootCommand(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "rollguard",
		Short: "Make Kubernetes rolling updates lossless",
		Long: `rollguard finds workloads whose rolling updates lose connections, and says how to fix them.

Case 1: an old pod stops listening while kube-proxy on some nodes still sends it new
connections (fix: a preStop delay longer than endpoint propagation, and a grace period
that covers it). Case 2: a new pod joins the endpoints before its process listens
(fix: a readinessProbe on the served port).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get(),
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newLabCommand(s), newAuditCommand(s), newFixCommand(s), newRulesCommand(s), newServeCommand(s), newAgentCommand(s), newVerifyCommand(s), newMeasureCommand(s), newCanaryCommand(s), newWebhookCommand(s), newPauseCommand(), newVersionCommand(s))
	return root
}

// isTerminal reports whether w is a terminal that wants colour.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	return os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

func newVersionCommand(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rollguard's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(s.Out, version.Get())
			return err
		},
	}
}
