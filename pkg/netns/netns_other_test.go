//go:build !linux

package netns_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rollguard/rollguard/pkg/netns"
)

// TestUnsupported: without network namespaces every function fails with
// ErrUnsupported, and Do never runs f in the process's own namespace.
func TestUnsupported(t *testing.T) {
	if netns.Supported {
		t.Fatal("Supported is true on a system without network namespaces")
	}
	ran := false
	if err := netns.Do("x", func() error { ran = true; return nil }); !errors.Is(err, netns.ErrUnsupported) || ran {
		t.Errorf("Do: %v, f ran %v", err, ran)
	}
	if _, err := netns.Dialer("x")(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, netns.ErrUnsupported) {
		t.Errorf("Dialer: %v", err)
	}
	if _, err := netns.Listen("x", "tcp", "127.0.0.1:0"); !errors.Is(err, netns.ErrUnsupported) {
		t.Errorf("Listen: %v", err)
	}
}
