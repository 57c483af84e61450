package observe

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// ListenConntrack follows the new connection-tracking entries of this
// network namespace (a node's, for an agent on the host network) until ctx
// ends, and keeps those of TCP connections to target: for each, the
// source port and the address the connection was translated to. It needs
// CAP_NET_ADMIN.
func ListenConntrack(ctx context.Context, target netip.AddrPort) (*ConntrackListener, error) {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack: %w (the agent needs NET_ADMIN on the host network)", err)
	}
	// A burst of new connections must not overflow the socket: a lost
	// event would read as "sent to no pod".
	_ = c.SetReadBuffer(8 << 20)
	evs := make(chan conntrack.Event, 4096)
	errs, err := c.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("conntrack: listening for new entries: %w", err)
	}
	l := &ConntrackListener{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-ctx.Done():
				c.Close()
				return
			case err := <-errs:
				l.mu.Lock()
				if l.err == nil {
					l.err = fmt.Errorf("conntrack: %w: some events may be lost", err)
				}
				l.mu.Unlock()
			case ev := <-evs:
				f := ev.Flow
				if f == nil || f.TupleOrig.Proto.Protocol != syscall.IPPROTO_TCP {
					continue
				}
				orig, reply := f.TupleOrig, f.TupleReply
				if netip.AddrPortFrom(orig.IP.DestinationAddress.Unmap(), orig.Proto.DestinationPort) != target {
					continue
				}
				to := netip.AddrPortFrom(reply.IP.SourceAddress.Unmap(), reply.Proto.SourcePort)
				if to == target {
					continue // not translated: no endpoint took it
				}
				l.mu.Lock()
				l.entries = append(l.entries, ConnEntry{At: time.Now(), SrcPort: orig.Proto.SourcePort, To: to})
				l.mu.Unlock()
			}
		}
	}()
	return l, nil
}
