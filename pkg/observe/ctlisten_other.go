//go:build !linux

package observe

import (
	"context"
	"errors"
	"net/netip"
)

// ListenConntrack needs Linux's connection tracking.
func ListenConntrack(context.Context, netip.AddrPort) (*ConntrackListener, error) {
	return nil, errors.New("conntrack: only on Linux")
}
