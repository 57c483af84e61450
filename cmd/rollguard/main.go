// Command rollguard finds, fixes and proves away the connection losses of
// Kubernetes rolling updates. See README.md.
package main

import (
	"os"

	"github.com/rollguard/rollguard/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
