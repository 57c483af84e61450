// Command rollguard finds, fixes and proves away the connection losses of
// Kubernetes rolling updates. See README.md.
package main

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/rollguard/rollguard/internal/cli"
)

// The lab's --netns enters network namespaces on locked threads. Locking
// the main goroutine to the main thread here, during initialisation (which
// Go runs on the main thread), keeps that thread out of it (see pkg/netns).
func init() { runtime.LockOSThread() }

// A short-lived batch process: collecting garbage less often saves about a
// fifth of an audit's CPU, and the memory limit keeps the heap bounded all
// the same. GOGC and GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}

func main() {
	tuneGC()
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
