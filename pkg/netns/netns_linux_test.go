//go:build linux

package netns_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/netns"
)

// Namespaces are entered on locked threads; keeping the main goroutine on
// the main thread keeps that thread out of them (see Do).
func init() { runtime.LockOSThread() }

// TestMissingNamespace: entering a namespace that does not exist fails,
// names it, and never runs f (in the wrong namespace).
func TestMissingNamespace(t *testing.T) {
	ran := false
	err := netns.Do("rollguard-test-absent", func() error { ran = true; return nil })
	if err == nil || ran || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "rollguard-test-absent") {
		t.Errorf("err %v, f ran %v; want a not-exist error naming the namespace, f not run", err, ran)
	}
}

// TestListenAndDialInside: a listener opened with Listen lives in the
// namespace, so Dialer reaches it and the host's own namespace does not.
func TestListenAndDialInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	ns := fmt.Sprintf("rgtest-netns-%d", os.Getpid())
	for _, args := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	l, err := netns.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := netns.Dialer(ns)(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s inside %s: %v", addr, ns, err)
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s answered in the host's namespace: the listener is not inside %s", addr, ns)
	}
}
