//go:build !linux

package netns

import (
	"context"
	"net"
)

// Supported is false: this system has no network namespaces.
const Supported = false

// Do returns ErrUnsupported without running f: running f in the process's
// own namespace instead would give the caller the wrong network silently.
func Do(string, func() error) error { return ErrUnsupported }

// Dialer returns a dial function that always fails with ErrUnsupported.
func Dialer(string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) { return nil, ErrUnsupported }
}

// Listen returns ErrUnsupported.
func Listen(string, string, string) (net.Listener, error) { return nil, ErrUnsupported }
