//go:build unix

package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// newPauseCommand is the pod sandbox's process: it sleeps, reaps children
// and exits on SIGTERM, like the pause image, so the project's own binary
// can be the e2e cluster's sandbox image.
func newPauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Short:  "Sleep until SIGTERM, reaping children (the e2e cluster's sandbox process)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
			for sig := range sigs {
				if sig != syscall.SIGCHLD {
					return nil
				}
				for {
					var ws syscall.WaitStatus
					if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
						break
					}
				}
			}
			return nil
		},
	}
}
