//go:build !linux

package agent

import (
	"context"
	"errors"
	"net"
)

// dialFromKnownPort needs Linux (conntrack is Linux's).
func dialFromKnownPort(context.Context, string) (net.Conn, uint16, error) {
	return nil, 0, errors.New("conntrack: only on Linux")
}
