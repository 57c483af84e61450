package traffic_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/traffic"
)

func dialTo(addr string) traffic.Dialer {
	return func(ctx context.Context, node int, seq int64) (net.Conn, traffic.Pick, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		return c, traffic.Pick{Endpoint: addr}, err
	}
}

func one(t *testing.T, mode traffic.Mode, addr string) traffic.Record {
	t.Helper()
	var mem traffic.Memory
	err := traffic.Run(context.Background(), traffic.Config{Rate: 10, Duration: 100 * time.Millisecond, Mode: mode,
		ConnectTimeout: 300 * time.Millisecond, ResponseTimeout: 300 * time.Millisecond, Dial: dialTo(addr)}, &mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(mem.Records))
	}
	return mem.Records[0]
}

// listen starts a TCP server whose connections are handled by handle.
func listen(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().String()
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// neverAccepts returns the address of a listener with a backlog of one
// that is already full: the kernel drops further SYNs unanswered.
func neverAccepts(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 4; i++ { // fill the accept queue
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

func TestClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mode traffic.Mode
		addr func(t *testing.T) string
		want traffic.Class
	}{
		{"ok", traffic.ModeHTTP, func(t *testing.T) string {
			return listen(t, func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, 512)
				c.Read(buf)
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
			})
		}, traffic.OK},
		{"refused", traffic.ModeConnect, closedPort, traffic.Refused},
		{"reset by SO_LINGER 0", traffic.ModeHTTP, func(t *testing.T) string {
			return listen(t, func(c net.Conn) {
				buf := make([]byte, 512)
				c.Read(buf)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			})
		}, traffic.Reset},
		{"connect timeout", traffic.ModeConnect, neverAccepts, traffic.ConnectTimeout},
		{"response timeout", traffic.ModeHTTP, func(t *testing.T) string {
			return listen(t, func(c net.Conn) { time.Sleep(2 * time.Second); c.Close() })
		}, traffic.ResponseTimeout},
		{"closed before responding", traffic.ModeHTTP, func(t *testing.T) string {
			return listen(t, func(c net.Conn) {
				buf := make([]byte, 512)
				c.Read(buf)
				c.Close()
			})
		}, traffic.EOF},
		{"503", traffic.ModeHTTP, func(t *testing.T) string {
			return listen(t, func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, 512)
				c.Read(buf)
				c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
			})
		}, traffic.HTTP5xx},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := one(t, tc.mode, tc.addr(t))
			if r.Class != tc.want {
				t.Errorf("class %s (%s), want %s", r.Class, r.Err, tc.want)
			}
		})
	}
}

// TestOpenLoopUnderSlowServer: every response takes 300ms, yet requests
// start on schedule (no coordinated omission) and latency is measured
// from the intended send time.
func TestOpenLoopUnderSlowServer(t *testing.T) {
	t.Parallel()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	var mem traffic.Memory
	sum := traffic.NewSummary()
	start := time.Now()
	err = traffic.Run(context.Background(), traffic.Config{Rate: 200, Duration: time.Second, Mode: traffic.ModeHTTP,
		Dial: dialTo(l.Addr().String())}, &mem, sum)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.Records) != 200 || sum.Total != 200 || sum.ByClass[traffic.OK] != 200 {
		t.Fatalf("got %d records, %v", len(mem.Records), sum.ByClass)
	}
	var worst time.Duration
	for _, r := range mem.Records {
		want := start.Add(time.Duration(r.Seq) * 5 * time.Millisecond)
		if d := r.Intended.Sub(want); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("request %d intended at %s, want %s", r.Seq, r.Intended.Sub(start), want.Sub(start))
		}
		worst = max(worst, r.Start.Sub(r.Intended))
		if r.Latency < 300*time.Millisecond {
			t.Fatalf("request %d latency %s is below the server's 300ms", r.Seq, r.Latency)
		}
	}
	// Generous for a loaded 2-core CI machine; a closed loop would be seconds late.
	if worst > 100*time.Millisecond {
		t.Errorf("a request started %s after its intended time", worst)
	}
	if p50 := sum.Quantile("", 50); p50 < 300*time.Millisecond || p50 > 400*time.Millisecond {
		t.Errorf("p50 latency %s, want about 300ms", p50)
	}
}

func TestKeepAliveReusesConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	sum := traffic.NewSummary()
	if err := traffic.Run(context.Background(), traffic.Config{Rate: 100, Duration: 500 * time.Millisecond,
		Mode: traffic.ModeKeepAlive, Dial: dialTo(l.Addr().String())}, sum); err != nil {
		t.Fatal(err)
	}
	if sum.ByClass[traffic.OK] != 50 || conns.Load() > 10 {
		t.Errorf("%v over %d connections: want 50 ok over a few reused connections", sum.ByClass, conns.Load())
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	d := dialTo("127.0.0.1:1")
	for _, c := range []traffic.Config{
		{Rate: -1, Duration: time.Second, Mode: traffic.ModeHTTP, Dial: d},
		{Rate: 10, Duration: 0, Mode: traffic.ModeHTTP, Dial: d},
		{Rate: 40000, Duration: 20 * time.Minute, Mode: traffic.ModeHTTP, Dial: d},
		{Rate: 10, Duration: time.Second, Mode: "udp", Dial: d},
		{Rate: 0, Duration: time.Second, Mode: traffic.ModeHTTP, Dial: d},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
