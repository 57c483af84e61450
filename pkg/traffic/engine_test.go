package traffic_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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
		{"503", traffic.ModeHTTP, status(503), traffic.HTTP5xx},
		{"refused, keep-alive", traffic.ModeKeepAlive, closedPort, traffic.Refused},
		{"reset by SO_LINGER 0, keep-alive", traffic.ModeKeepAlive, func(t *testing.T) string {
			return listen(t, func(c net.Conn) {
				buf := make([]byte, 512)
				c.Read(buf)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			})
		}, traffic.Reset},
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
	var lags []time.Duration
	for _, r := range mem.Records {
		want := start.Add(time.Duration(r.Seq) * 5 * time.Millisecond)
		if d := r.Intended.Sub(want); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("request %d intended at %s, want %s", r.Seq, r.Intended.Sub(start), want.Sub(start))
		}
		lags = append(lags, r.Start.Sub(r.Intended))
		if r.Latency < 300*time.Millisecond {
			t.Fatalf("request %d latency %s is below the server's 300ms", r.Seq, r.Latency)
		}
	}
	// A closed loop would hold requests back by the server's 300ms: with
	// 32 workers the median request would start about 0.5s late, the last
	// about 1.5s. A loaded machine (or -race) stalls the open loop too, but
	// only for a few requests at a time, so the median stays small.
	slices.Sort(lags)
	if med, worst := lags[len(lags)/2], lags[len(lags)-1]; med > 100*time.Millisecond || worst > time.Second {
		t.Errorf("requests started a median %s and at most %s after their intended times", med, worst)
	}
	if p50 := sum.Quantile("", 50); p50 < 300*time.Millisecond || p50 > time.Second {
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
	// One worker, so requests never overlap, however loaded the machine:
	// each may reuse the previous one's connection.
	if err := traffic.Run(context.Background(), traffic.Config{Rate: 100, Duration: 500 * time.Millisecond,
		Mode: traffic.ModeKeepAlive, MaxWorkers: 1, Dial: dialTo(l.Addr().String())}, sum); err != nil {
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

// status returns a server that answers every request with code.
func status(code int) func(t *testing.T) string {
	return func(t *testing.T) string {
		return listen(t, func(c net.Conn) {
			defer c.Close()
			buf := make([]byte, 512)
			c.Read(buf)
			fmt.Fprintf(c, "HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code)
		})
	}
}

// TestStatusClasses: real responses on both sides of each boundary, over
// a new connection and through net/http's keep-alive client.
func TestStatusClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		want traffic.Class
	}{
		{200, traffic.OK}, {204, traffic.OK}, {399, traffic.OK},
		{400, traffic.HTTPOther}, {404, traffic.HTTPOther}, {499, traffic.HTTPOther},
		{500, traffic.HTTP5xx}, {502, traffic.HTTP5xx}, {599, traffic.HTTP5xx},
	} {
		for _, mode := range []traffic.Mode{traffic.ModeHTTP, traffic.ModeKeepAlive} {
			t.Run(fmt.Sprintf("%d %s", tc.code, mode), func(t *testing.T) {
				t.Parallel()
				r := one(t, mode, status(tc.code)(t))
				if r.Class != tc.want || r.Status != tc.code {
					t.Errorf("class %s status %d (%s), want %s status %d", r.Class, r.Status, r.Err, tc.want, tc.code)
				}
			})
		}
	}
}

// TestBrokenPipe: a real EPIPE. The dialer sends one byte, on which the
// server resets the connection (SO_LINGER 0). The dialer reads the reset
// (that read gets ECONNRESET, which the kernel reports once), so the
// engine's write of the request gets EPIPE: a reset, like ECONNRESET.
func TestBrokenPipe(t *testing.T) {
	t.Parallel()
	addr := listen(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	dial := func(ctx context.Context, node int, seq int64) (net.Conn, traffic.Pick, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, traffic.Pick{}, err
		}
		if _, err := c.Write([]byte("G")); err != nil {
			t.Errorf("first byte: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("waiting for the reset: %v, want ECONNRESET", err)
		}
		return c, traffic.Pick{Endpoint: addr}, nil
	}
	var mem traffic.Memory
	if err := traffic.Run(context.Background(), traffic.Config{Rate: 10, Duration: 100 * time.Millisecond, Mode: traffic.ModeHTTP,
		ConnectTimeout: time.Second, ResponseTimeout: time.Second, Dial: dial}, &mem); err != nil {
		t.Fatal(err)
	}
	if len(mem.Records) != 1 {
		t.Fatalf("got %d records, want 1", len(mem.Records))
	}
	r := mem.Records[0]
	if !strings.Contains(r.Err, syscall.EPIPE.Error()) {
		t.Fatalf("error %q is not EPIPE: the test did not produce a broken pipe", r.Err)
	}
	if r.Class != traffic.Reset {
		t.Errorf("EPIPE classified %s, want %s", r.Class, traffic.Reset)
	}
}

// TestDialErrnoClasses: errors only a real network gives (an address that
// is gone, a network with no route) are classified the same whichever way
// the engine dials, including through net/http's keep-alive client, which
// wraps them. Loopback cannot produce them, so the dialer returns them as
// the net package does.
func TestDialErrnoClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		errno syscall.Errno
		want  traffic.Class
	}{
		{syscall.EHOSTUNREACH, traffic.NoRoute},
		{syscall.ENETUNREACH, traffic.NetUnreachable},
		{syscall.ECONNREFUSED, traffic.Refused},
		{syscall.ECONNRESET, traffic.Reset},
	} {
		for _, mode := range traffic.Modes {
			t.Run(fmt.Sprintf("%s %s", tc.errno, mode), func(t *testing.T) {
				t.Parallel()
				dial := func(ctx context.Context, node int, seq int64) (net.Conn, traffic.Pick, error) {
					return nil, traffic.Pick{Endpoint: "198.18.0.9:80"}, &net.OpError{Op: "dial", Net: "tcp",
						Addr: &net.TCPAddr{IP: net.IPv4(198, 18, 0, 9), Port: 80}, Err: os.NewSyscallError("connect", tc.errno)}
				}
				var mem traffic.Memory
				if err := traffic.Run(context.Background(), traffic.Config{Rate: 10, Duration: 100 * time.Millisecond,
					Mode: mode, Dial: dial}, &mem); err != nil {
					t.Fatal(err)
				}
				if len(mem.Records) != 1 {
					t.Fatalf("got %d records, want 1", len(mem.Records))
				}
				if r := mem.Records[0]; r.Class != tc.want || r.Endpoint != "198.18.0.9:80" {
					t.Errorf("class %s endpoint %q (%s), want %s", r.Class, r.Endpoint, r.Err, tc.want)
				}
			})
		}
	}
}

// TestLatencyFromIntendedTime: with one worker and a server that takes
// 50ms, requests scheduled every 10ms start later and later. An open-loop
// engine must count that wait: each latency runs from the intended time to
// the outcome, not from when a worker got round to the request.
func TestLatencyFromIntendedTime(t *testing.T) {
	t.Parallel()
	const serverTime = 50 * time.Millisecond
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(serverTime)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	for _, mode := range []traffic.Mode{traffic.ModeHTTP, traffic.ModeKeepAlive} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			var done arrivals
			sum := traffic.NewSummary()
			err := traffic.Run(context.Background(), traffic.Config{Rate: 100, Duration: 200 * time.Millisecond, Mode: mode,
				MaxWorkers: 1, Dial: dialTo(l.Addr().String())}, &done, sum)
			if err != nil {
				t.Fatal(err)
			}
			if len(done.records) != 20 || sum.ByClass[traffic.OK] != 20 {
				t.Fatalf("got %d records, %v; want 20 ok", len(done.records), sum.ByClass)
			}
			var first time.Time
			for _, r := range done.records {
				if r.Seq == 0 {
					first = r.Intended
				}
			}
			var lastWait time.Duration
			for i, r := range done.records {
				if got, want := r.Intended.Sub(first), time.Duration(r.Seq)*10*time.Millisecond; got != want {
					t.Errorf("request %d intended %s after the first, want %s", r.Seq, got, want)
				}
				wait := r.Start.Sub(r.Intended)
				if r.Latency < wait+serverTime-time.Millisecond {
					t.Errorf("request %d waited %s to start and the server took %s, but its latency is %s", r.Seq, wait, serverTime, r.Latency)
				}
				// The sink saw the record just after its latency was taken.
				if seen := done.at[i].Sub(r.Intended); r.Latency > seen || seen-r.Latency > 100*time.Millisecond {
					t.Errorf("request %d latency %s, but it reached the sink %s after its intended time", r.Seq, r.Latency, seen)
				}
				lastWait = max(lastWait, wait)
			}
			// 20 requests of at least 50ms each, one at a time, over a 200ms
			// schedule: the last starts about 750ms late.
			if lastWait < 500*time.Millisecond {
				t.Fatalf("the longest wait to start was %s: the single worker did not hold requests back", lastWait)
			}
			if sum.Late < 15 {
				t.Errorf("%d requests counted late, want most of the 20", sum.Late)
			}
			if p50 := sum.Quantile("", 50); p50 < 350*time.Millisecond {
				t.Errorf("p50 latency %s, want the wait included (at least about 400ms)", p50)
			}
		})
	}
}

// arrivals keeps each record with the time it reached the sink.
type arrivals struct {
	mu      sync.Mutex
	records []traffic.Record
	at      []time.Time
}

func (a *arrivals) Add(r traffic.Record) {
	now := time.Now()
	a.mu.Lock()
	a.records = append(a.records, r)
	a.at = append(a.at, now)
	a.mu.Unlock()
}
