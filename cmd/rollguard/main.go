// Command rollguard finds, fixes and proves away the connection losses of
// Kubernetes rolling updates. See README.md.
package main

import (
	"os"
	"runtime"

	"github.com/rollguard/rollguard/internal/cli"
)

// The lab's --netns enters network namespaces on locked threads. Locking
// the main goroutine to the main thread here, during initialisation (which
// Go runs on the main thread), keeps that thread out of it (see pkg/netns).
func init() { runtime.LockOSThread() }

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
