//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// Supported is true where network namespaces exist: on Linux.
const Supported = true

// Do runs f on an OS thread that has entered namespace ns. Only that
// thread is inside: goroutines f starts run elsewhere, in the process's own
// namespace, so f must open its sockets itself. The thread is never
// unlocked, so it is discarded with its goroutine rather than going back to
// serve other code in the wrong namespace. A program that uses Do should
// lock its main goroutine to the main thread (runtime.LockOSThread at the
// start of main), so that no namespace ever lands on the main thread,
// whose namespace is the one /proc/PID/ns/net reports for the process.
func Do(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Dialer returns a dial function whose connections start in namespace ns,
// for net/http, client-go (rest.Config.Dial) or the traffic engine.
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := Do(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Listen opens a listener in namespace ns.
func Listen(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
