package agent

import (
	"context"
	"net"
	"strconv"
	"testing"
)

// TestDialFromKnownPort: the source port is known before the connection
// is made, so a refused request has one too, and it is the port the
// server sees.
func TestDialFromKnownPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	seen := make(chan string, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			seen <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	c, port, err := dialFromKnownPort(context.Background(), addr)
	if err != nil || port == 0 {
		t.Fatalf("dial: %v, port %d", err, port)
	}
	c.Close()
	if remote := <-seen; remote != net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) {
		t.Errorf("the server saw %s, the dialer said port %d", remote, port)
	}
	l.Close()
	if _, port, err := dialFromKnownPort(context.Background(), addr); err == nil || port == 0 {
		t.Errorf("a refused dial: %v, port %d: want an error and the port", err, port)
	}
}
