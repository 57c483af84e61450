//go:build windows

package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// newPauseCommand is the pod sandbox's process of the e2e cluster, which
// runs on Linux. On Windows there is no SIGCHLD and no zombie to reap:
// an exited child's status stays with its process handle, not with its
// parent. So pause only sleeps until it is told to stop, which is all the
// pause image does besides reaping.
func newPauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Short:  "Sleep until stopped (the e2e cluster's sandbox process)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
			defer signal.Stop(sigs)
			<-sigs
			return nil
		},
	}
}
