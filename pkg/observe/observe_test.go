package observe_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/observe"
	"github.com/rollguard/rollguard/pkg/timeline"
)

// TestProberSeesListenAndClose: a real address goes from refusing to
// accepting to refusing; the prober reports each change once, with the
// previous look as the lower bound of when it happened.
func TestProberSeesListenAndClose(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens at first

	var mu sync.Mutex
	var got []timeline.Event
	p := &observe.Prober{Period: 20 * time.Millisecond, Timeout: 50 * time.Millisecond, Node: 2,
		Dial: func(ctx context.Context, a string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", a)
		},
		Emit: func(e timeline.Event) { mu.Lock(); got = append(got, e); mu.Unlock() }}
	p.Watch("web-1", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	waitFor := func(n int) {
		t.Helper()
		for ctx.Err() == nil {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("waited for %d events, got %v", n, got)
	}
	waitFor(1)
	time.Sleep(60 * time.Millisecond)
	opened := time.Now()
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(2)
	time.Sleep(60 * time.Millisecond)
	closed := time.Now()
	l.Close()
	waitFor(3)
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	kinds := []timeline.Kind{timeline.PodRefusing, timeline.PodAccepting, timeline.PodRefusing}
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3 changes: %v", len(got), got)
	}
	for i, e := range got {
		if e.Kind != kinds[i] || e.Pod != "web-1" || e.Node != 2 {
			t.Errorf("event %d: %+v, want %s", i, e, kinds[i])
		}
	}
	if !got[0].Since.IsZero() {
		t.Error("the first look has no previous look")
	}
	for i, changed := range map[int]time.Time{1: opened, 2: closed} {
		e := got[i]
		if !e.Since.Before(changed) || e.At.Before(changed) {
			t.Errorf("event %d: the change at %v is not within (%v, %v]", i, changed, e.Since, e.At)
		}
		if e.At.Sub(e.Since) > time.Second {
			t.Errorf("event %d: resolution %v, want about the period", i, e.At.Sub(e.Since))
		}
	}
}

func TestConntrack(t *testing.T) {
	t.Parallel()
	var c observe.Conntrack
	c.Track(time.Now(), 1, 42, "web-2")
	ev := c.Events()
	if len(ev) != 1 || ev[0].Kind != timeline.ConnTracked || ev[0].Seq != 42 || ev[0].Pod != "web-2" || ev[0].Node != 1 {
		t.Errorf("got %+v", ev)
	}
}

// TestProberIgnoresTimeouts: a dial that times out proves nothing (the
// address may be gone, or the machine busy); only a refusal or no route
// counts as not accepting.
func TestProberIgnoresTimeouts(t *testing.T) {
	t.Parallel()
	var got []timeline.Event
	// Accepting first, then timeouts for a while, then no route. The run
	// ends at the second event (or after 10 s on a machine too busy to
	// get there), so the test does not depend on how fast rounds go.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	i := 0
	var noRoute time.Time
	p := &observe.Prober{Period: time.Millisecond, Timeout: time.Millisecond,
		Dial: func(context.Context, string) (net.Conn, error) {
			i++
			switch {
			case i == 1:
				// An answered look that cannot itself time out on a
				// busy machine (a real dial within 1 ms might).
				c, s := net.Pipe()
				s.Close()
				return c, nil
			case i < 6:
				return nil, &net.OpError{Op: "dial", Err: context.DeadlineExceeded}
			}
			if noRoute.IsZero() {
				noRoute = time.Now()
			}
			return nil, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
		},
		Emit: func(e timeline.Event) {
			got = append(got, e)
			if len(got) == 2 {
				cancel()
			}
		}}
	p.Watch("web", "192.0.2.1:80")
	p.Run(ctx)
	if len(got) != 2 || got[0].Kind != timeline.PodAccepting || got[1].Kind != timeline.PodRefusing {
		t.Fatalf("got %+v: want accepting, then refusing from the no-route look, none from the timeouts", got)
	}
	// The refusal's lower bound is the last answered look: the first one,
	// not a timeout.
	if !got[1].Since.Equal(got[0].At) || got[1].At.Before(noRoute) {
		t.Errorf("refusing at %v since %v: want the no-route look (from %v), since the accepting look at %v", got[1].At, got[1].Since, noRoute, got[0].At)
	}
}

// TestMatch pairs each dial with the entry of its source port that came
// right after it, and not with an older or much later use of the port.
func TestMatch(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pod := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	entries := []observe.ConnEntry{
		{At: at(0), SrcPort: 40000, To: pod("10.0.0.1:8080")},    // an earlier use of the port
		{At: at(5002), SrcPort: 40000, To: pod("10.0.0.2:8080")}, // this dial's
		{At: at(9000), SrcPort: 40000, To: pod("10.0.0.3:8080")}, // a later use
		{At: at(5001), SrcPort: 40001, To: pod("10.0.0.4:8080")},
		{At: at(8000), SrcPort: 40002, To: pod("10.0.0.5:8080")}, // too late for its dial
	}
	got := observe.Match([]observe.Dial{
		{Seq: 1, SrcPort: 40000, At: at(5000)},
		{Seq: 2, SrcPort: 40001, At: at(5005)}, // the clock read a little after the SYN left
		{Seq: 3, SrcPort: 40002, At: at(5000)},
		{Seq: 4, SrcPort: 40003, At: at(5000)}, // no entry: sent to no pod
	}, entries, 2*time.Second)
	want := map[int64]string{1: "10.0.0.2:8080", 2: "10.0.0.4:8080"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for seq, to := range want {
		if got[seq].To.String() != to {
			t.Errorf("seq %d: %v, want %s", seq, got[seq], to)
		}
	}
}
