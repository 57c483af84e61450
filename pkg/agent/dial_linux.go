package agent

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// dialFromKnownPort dials addr from a source port it picks first: the
// socket is bound to an ephemeral port before connecting, so the port is
// known even when the connection is refused or times out, and conntrack's
// entry for it can be matched to the request.
func dialFromKnownPort(ctx context.Context, addr string) (net.Conn, uint16, error) {
	var port uint16
	d := net.Dialer{Control: func(network, _ string, c syscall.RawConn) error {
		var berr error
		err := c.Control(func(fd uintptr) {
			var sa syscall.Sockaddr = &syscall.SockaddrInet4{}
			if network == "tcp6" {
				sa = &syscall.SockaddrInet6{}
			}
			if berr = syscall.Bind(int(fd), sa); berr != nil {
				return
			}
			got, err := syscall.Getsockname(int(fd))
			switch a := got.(type) {
			case *syscall.SockaddrInet4:
				port = uint16(a.Port)
			case *syscall.SockaddrInet6:
				port = uint16(a.Port)
			default:
				berr = fmt.Errorf("getsockname: %v", err)
			}
		})
		if err != nil {
			return err
		}
		return berr
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	return c, port, err
}
